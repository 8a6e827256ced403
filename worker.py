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
import os
import signal
import socket
import sys
from datetime import timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import IndexedValueType, PendingActivityState
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker
from tether import metrics, tracing
from tether.client import connect
from tether.connection import resolved
from tether.contracts import ReapInput
from tether.embedded.temporal import SEARCH_ATTRIBUTE_TYPES
from tether.encryption import InvalidKeys
from tether.plugin import TetherPlugin
from tether.sandbox.manager import LABEL_WORKER
from tether.settings import SettingsError, TetherSettings, read_settings
from tether.tools import FunctionTools, ToolLoadError
from tether.workflows.reaper import REAPER_EVERY, REAPER_WORKFLOW_ID, SandboxReaper

log = logging.getLogger("tether.worker")
STICKY_WAIT = timedelta(seconds=3)
"""How long a run's next workflow task waits on this worker's sticky queue before any worker
may take it (the SDK's default is 10 s): a killed worker's runs wait this long, not more. A
busy live worker that misses it costs a replay of the run's history, not a failure."""


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
    worker = Worker(client, task_queue=queue, plugins=[plugin],
                    sticky_queue_schedule_to_start_timeout=STICKY_WAIT)
    await register_search_attributes(client)
    await schedule_reaper(client, queue)
    running = asyncio.create_task(worker.run())
    if plugin.with_sandboxes:
        await reclaim_calls_of_a_dead_predecessor(client, plugin, queue)
    log.info("worker %s serving %s and %s", settings.worker_id, queue,
             settings.host_task_queue(queue))
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, running], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not running.done():
        await worker.shutdown()
    await running


async def reclaim_calls_of_a_dead_predecessor(client: Client, plugin: TetherPlugin, queue: str) -> None:
    """Hands back to Temporal at once the calls a predecessor on this host (the same worker
    id) was running when it was killed, rather than after each one's heartbeat timeout, and
    frees this host's runs from sticky queues (a dead worker's would hold their next workflow
    task for STICKY_WAIT; a live one's replays the run once): they go on as soon as this
    worker polls.

    Only attempts of a process of this host that no longer exists are failed, with a
    retryable failure: the retry reattaches here, where the executor answers for a call that
    already finished. Anything else is left to its timeouts."""
    sandboxes = plugin.host_activities(client, queue).sandboxes.sandboxes
    try:
        containers = await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: plugin.settings.worker_id})
        runs: set[str] = set()
        for container in containers:
            with contextlib.suppress(Exception):  # one going away, an executor not answering
                identity = await asyncio.to_thread(sandboxes.identity_of, container)
                if identity is not None:
                    runs.add(identity.workflow_id)
    except Exception as error:  # the timeouts still recover these runs, later
        log.warning("could not list this host's sandboxes to reclaim their calls: %s", error)
        return
    for workflow_id in sorted(runs):
        try:
            await _reclaim_run(client, workflow_id)
        except RPCError as error:
            log.warning("%s: could not reclaim a dead predecessor's calls: %s", workflow_id, error)


async def _reclaim_run(client: Client, workflow_id: str) -> None:
    description = await client.get_workflow_handle(workflow_id).describe()
    if description.status is None or description.status.name != "RUNNING":
        return
    orphaned = [p for p in description.raw_description.pending_activities
                if p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                and _process_gone(p.last_worker_identity, own=client.identity)]
    for pending in orphaned:
        handle = client.get_async_activity_handle(
            workflow_id=workflow_id, run_id=description.run_id, activity_id=pending.activity_id)
        with contextlib.suppress(RPCError):  # it ended meanwhile
            await handle.fail(ApplicationError(
                f"the worker running this attempt ({pending.last_worker_identity}) is gone",
                type="WorkerGone"))
    await client.workflow_service.reset_sticky_task_queue(ResetStickyTaskQueueRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id, run_id=description.run_id)))
    if orphaned:
        log.info("%s: handed back %d call(s) of a worker that is gone", workflow_id, len(orphaned))


def _process_gone(identity: str, *, own: str) -> bool:
    """Whether a worker identity (`<pid>@<host>`, the SDK's default) names a process of this
    host that no longer runs."""
    pid, _, host = identity.partition("@")
    if identity == own or host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


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


def _environment_settings() -> TetherSettings:
    try:
        return read_settings()
    except (SettingsError, InvalidKeys) as error:
        raise SystemExit(f"tether worker: {error}") from None


def check_before_connecting(settings: TetherSettings) -> None:
    """Fails in one line, before any connection, on what would stop the worker once
    connected: a tools entry that does not load, an OTLP protocol tether does not speak.
    The working directory's modules are importable, as under `python -m`, so that
    `TETHER_TOOLS=shop.tools tether worker` finds ./shop/tools.py; appended, so that a file
    there never shadows an installed module."""
    if settings.tools and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        FunctionTools.load(settings.tools)
    except ToolLoadError as error:
        raise SystemExit(f"tether worker: TETHER_TOOLS: {error}") from None
    try:
        tracing.check_exporter(settings)
    except ValueError as error:
        raise SystemExit(f"tether worker: {error}") from None


async def main(settings: TetherSettings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # First of all: a signal that arrives while the worker connects must stop it, not be
    # swallowed with a cancelled connection attempt.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = settings or _environment_settings()
    check_before_connecting(settings)
    if settings.metrics_bind:
        # Before any client connects: a client keeps the runtime it was made on.
        try:
            metrics.serve_prometheus(settings.metrics_bind)
        except ValueError as error:  # the SDK's: "Failed starting Prometheus exporter: why"
            raise SystemExit(f"tether worker: can't serve metrics on {settings.metrics_bind}: "
                             f"{error}; choose another TETHER_METRICS_BIND / --metrics-bind") from None
        log.info("Prometheus metrics on http://%s/metrics", settings.metrics_bind)
    # The profile's address and namespace (tether.connection), in its log lines too.
    await run_until_stopped(resolved(settings), stop)


if __name__ == "__main__":
    asyncio.run(main())
