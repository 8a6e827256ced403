"""`python worker.py`: one tether worker process.

It polls two task queues: the shared one (`TETHER_TASK_QUEUE`, default `agents`) for
workflows, model calls and sandbox acquisition, and this host's own (`agents@<worker id>`)
for tool calls and releases, so a run's tool calls reach the engine that holds its
container. It keeps a warm pool of ready sandboxes for them (`TETHER_POOL_SIZE`), and
drains it when it stops. Configured from the environment: TEMPORAL_ADDRESS,
TETHER_TASK_QUEUE, DOCKER_HOST, TETHER_WORKER_ID, TETHER_POOL_SIZE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

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
from temporalio.service import RPCError
from temporalio.worker import Worker

import settings
import tracing
from activities.model import call_model, start_conversation
from activities.sandboxes import Reaper, ReapInput, acquire_sandbox, release_sandbox
from activities.tools import call_tool
from client import connect
from embedded.temporal import SEARCH_ATTRIBUTE_TYPES
from sandbox.engine import engine
from sandbox.pool import WarmPool, size_from_env
from workflows.agent import AgentRun
from workflows.reaper import REAPER_EVERY, REAPER_WORKFLOW_ID, SandboxReaper

log = logging.getLogger("tether.worker")
SHUTDOWN_GRACE = timedelta(seconds=10)
HEARTBEAT_THROTTLE = timedelta(seconds=2)


def build_workers(client: Client, task_queue: str | None = None) -> list[Worker]:
    """The two workers one tether process runs: shared queue and this host's queue."""
    shared_queue = task_queue or settings.task_queue()
    reaper = Reaper(client)
    shared = Worker(
        client, task_queue=shared_queue,
        workflows=[AgentRun, SandboxReaper],
        activities=[start_conversation, call_model, acquire_sandbox, reaper.reap],
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        # Heartbeats carry a model's streamed text: send them often enough to watch.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
    host = Worker(
        client, task_queue=settings.host_task_queue(shared_queue),
        activities=[call_tool, release_sandbox, reaper.reap],
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
    )
    return [shared, host]


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


async def serve(client: Client, stop: asyncio.Event, task_queue: str | None = None) -> None:
    """Runs the workers until `stop` is set, then shuts down gracefully."""
    engine()  # fail fast, with a clear message, when no Docker engine answers
    queue = task_queue or settings.task_queue()
    await register_search_attributes(client)
    await schedule_reaper(client, queue)
    # Before the pool starts, so every unclaimed pool container found is a dead worker's.
    report = await Reaper(client).sweep()
    if report.removed:
        log.info("removed %d orphaned sandbox(es): %s", len(report.removed), report.removed)
    workers = build_workers(client, queue)
    pool = WarmPool(worker=settings.worker_id(), size=size_from_env())
    pool.start()
    runs = [asyncio.create_task(w.run()) for w in workers]
    log.info("worker %s serving %s and %s", settings.worker_id(), queue,
             settings.host_task_queue(queue))
    try:
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *runs], return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    finally:
        await pool.drain()
    for task in runs:
        if task.done() and task.exception():
            raise task.exception()  # type: ignore[misc]


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = await connect(interceptors=tracing.interceptors())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(client, stop)


if __name__ == "__main__":
    asyncio.run(main())
