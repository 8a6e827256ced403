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
from temporalio.service import RPCError
from temporalio.worker import Worker
from tether.client import connect
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


async def main(settings: TetherSettings | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # First of all: a signal that arrives while the worker connects must stop it, not be
    # swallowed with a cancelled connection attempt.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = settings or TetherSettings()
    client = await connect(settings)
    await serve(client, stop, settings=settings)


if __name__ == "__main__":
    asyncio.run(main())
