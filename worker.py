"""`python worker.py`, `python -m tether.worker` or `tether worker`: one tether worker process.

It polls two task queues: the shared one (`TETHER_TASK_QUEUE`, default `agents`) for
workflows, model calls and sandbox acquisition, and this host's own (`agents@<worker id>`)
for tool calls and releases, so a run's tool calls reach the engine that holds its
container. Both come from `TetherPlugin`; configuration is `TetherSettings`, from the
environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from tether import metrics
from tether.client import connect
from tether.connection import resolved
from tether.contracts import ReapInput
from tether.embedded.temporal import SEARCH_ATTRIBUTE_TYPES
from tether.plugin import TetherPlugin
from tether.settings import TetherSettings
from tether.workflows.reaper import REAPER_EVERY, REAPER_WORKFLOW_ID, SandboxReaper

log = logging.getLogger("tether.worker")


async def register_search_attributes(client: Client) -> None:
    """Adds tether's search attributes where the server lacks them (a server not started
    by tether). Without them, a run's first attribute update would fail its workflow task."""
    kinds = {"Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
             "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
             "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE}
    request = AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={name: kinds[kind] for name, kind in SEARCH_ATTRIBUTE_TYPES.items()},
    )
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as error:
        if "already" not in str(error).lower():
            log.warning("could not register search attributes: %s", error)


async def schedule_reaper(client: Client, task_queue: str) -> None:
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            SandboxReaper.run, ReapInput(), id=REAPER_WORKFLOW_ID, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=REAPER_EVERY)]),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(REAPER_WORKFLOW_ID, schedule)


async def serve(client: Client, stop: asyncio.Event, task_queue: str | None = None,
                settings: TetherSettings | None = None, plugin: TetherPlugin | None = None) -> None:
    """Runs a worker with `TetherPlugin` until `stop` is set, then shuts down gracefully."""
    plugin = plugin or TetherPlugin(settings)
    settings = plugin.settings
    queue = task_queue or settings.task_queue
    # Built first: it connects to the Docker engine, and fails fast, saying what to do,
    # when none answers.
    worker = Worker(client, task_queue=queue, plugins=[plugin])
    await register_search_attributes(client)
    await schedule_reaper(client, queue)
    running = asyncio.create_task(worker.run())
    log.info("worker %s serving %s and %s", settings.worker_id, queue,
             settings.host_task_queue(queue))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, running], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not running.done():
        await worker.shutdown()
    await running


RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0
"""Backoff between attempts to reach an unreachable Temporal server: 1 s, doubling, at most 10 s."""


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def connect_until_reachable(settings: TetherSettings, stop: asyncio.Event) -> Client | None:
    """Connects to the Temporal server, retrying with backoff for as long as it is
    unreachable, one log line per attempt; None when `stop` is set first."""
    delay = RETRY_FIRST_SECONDS
    attempt = 0
    while not stop.is_set():
        attempt += 1
        connecting = asyncio.create_task(connect(settings))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([connecting, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if stop.is_set():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            return None
        try:
            client = connecting.result()
        except ConnectionError as error:  # tether.client.connect: no server answers
            log.warning("%s; retrying in %g s (attempt %d)", error, delay, attempt)
        else:
            if attempt > 1:
                log.info("connected to the Temporal server at %s", settings.temporal_address)
            return client
        if await _stopped_within(stop, delay):
            return None
        delay = min(delay * 2, RETRY_MAX_SECONDS)
    return None


def lost_the_server(error: BaseException) -> bool:
    """Whether a worker failure came from the Temporal server being unreachable (rather than,
    say, a missing Docker engine or a bad tools module, which must stop the worker)."""
    seen: BaseException | None = error
    for _ in range(20):  # a chain of causes; never a cycle's endless walk
        if seen is None:
            return False
        if isinstance(seen, RPCError) and seen.status in (
                RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return True
        text = str(seen)
        if any(mark in text for mark in (
                "code: Unavailable", "tcp connect error", "Failed client connect",
                "Temporal server at")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def run_until_stopped(settings: TetherSettings, stop: asyncio.Event) -> None:
    """Connects (waiting for an unreachable server) and serves until `stop` is set. The
    SDK's worker rides out a server outage by itself, retrying its polls; should it fail
    anyway because the server is gone, this reconnects and starts a new worker."""
    delay = RETRY_FIRST_SECONDS
    while not stop.is_set():
        client = await connect_until_reachable(settings, stop)
        if client is None:
            return
        try:
            await serve(client, stop, settings=settings)
            return
        except Exception as error:
            if stop.is_set() or not lost_the_server(error):
                raise
            log.warning("the worker stopped: the Temporal server at %s was lost (%s); "
                        "starting again in %g s", settings.temporal_address,
                        str(error).splitlines()[0][:300] if str(error) else type(error).__name__,
                        delay)
        if await _stopped_within(stop, delay):
            return
        delay = min(delay * 2, RETRY_MAX_SECONDS)


async def main(settings: TetherSettings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # First of all: a signal that arrives while the worker connects must stop it, not be
    # swallowed with a cancelled connection attempt.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = settings or TetherSettings()
    if settings.metrics_bind:
        # Before any client connects: a client keeps the runtime it was made on.
        try:
            metrics.serve_prometheus(settings.metrics_bind)
        except ValueError as error:  # the SDK's: "Failed starting Prometheus exporter: why"
            raise SystemExit(f"tether worker: can't serve metrics on {settings.metrics_bind}: "
                             f"{error}; choose another TETHER_METRICS_BIND / --metrics-bind") from None
        log.info("Prometheus metrics on http://%s/metrics", settings.metrics_bind)
    # The profile's address and namespace (tether.connection), in its log lines too.
    await run_until_stopped(resolved(settings or TetherSettings()), stop)


if __name__ == "__main__":
    asyncio.run(main())
