"""A private Temporal dev server and tether worker for one benchmark.

Headless and in memory on a free port, with a data dir and worker identity of its own, so a
benchmark never touches a developer's `.tether/`, server or sandboxes, and leaves nothing
behind.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from tether import client as tether_client
from tether.activities.model import ModelActivities
from tether.embedded import temporal as embedded
from tether.plugin import HostActivities, TetherPlugin
from tether.sandbox.manager import LABEL_WORKER
from tether.settings import TetherSettings
from tether.worker import serve

ExtraActivities = Callable[[ModelActivities], Sequence[Callable[..., Any]]]
"""The benchmark's own activities, made from the tether worker's model activities (its store
and providers), so both see the same store."""


@dataclass
class Stack:
    client: Client
    task_queue: str
    """The tether worker's shared queue; its sandbox queue is
    `plugin.settings.host_task_queue(task_queue)`."""
    extra_queue: str
    """The queue of the benchmark's own workflows and activities, if it gave any."""
    plugin: TetherPlugin
    """The tether worker's plugin, with the settings it was built from."""
    model: ModelActivities
    """The tether worker's model activities: `model.conversations` is the store it reads."""
    host: HostActivities
    """Its sandbox and tool activities: `host.sandboxes.sandboxes` is its sandbox manager."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def isolated_settings(name: str) -> Iterator[TetherSettings]:
    """tether's settings from the environment, but with a fresh data dir (removed
    afterwards) and worker id of the benchmark's own, and tracing off: spans would add their
    context to every activity's headers, and so to the history the benchmarks measure.

    Nothing is changed in the environment: the worker, its store, sandbox manager and pool
    are all built from the settings object this yields.
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"tether-bench-{name}-"))
    try:
        yield TetherSettings(data_dir=data_dir, store_dir=None, trace_file="off",
                             worker_id=f"bench-{name}-{uuid.uuid4().hex[:8]}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@asynccontextmanager
async def local_stack(
    name: str, *, workflows: Sequence[type] = (), activities: ExtraActivities | None = None,
) -> AsyncIterator[Stack]:
    """Starts a dev server and a tether worker; `workflows` and `activities`, when given,
    run on a worker of their own, so tether's worker only ever sees its own types."""
    with isolated_settings(name) as settings:
        plugin = TetherPlugin(settings)
        port = free_port()
        server = await asyncio.to_thread(embedded.start, port=port, ui_port=None, db_file=None,
                                         wait_seconds=90)
        try:
            client = await tether_client.connect(settings, address=f"127.0.0.1:{port}")
            queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
            # Built here rather than when the worker starts (which gets the same object), so
            # the benchmark's own activities can share the worker's store and providers.
            model, host = plugin.model_activities(), plugin.host_activities(client, queue)
            extra = activities(model) if activities is not None else ()
            async with _workers(client, plugin, host, queue, workflows, extra) as extra_queue:
                yield Stack(client, queue, extra_queue, plugin, model, host)
        finally:
            server.terminate()
            await asyncio.to_thread(server.wait, 30)


@asynccontextmanager
async def _workers(
    client: Client, plugin: TetherPlugin, host: HostActivities, queue: str,
    workflows: Sequence[type], activities: Sequence[Callable[..., Any]],
) -> AsyncIterator[str]:
    extra_queue = f"{queue}-extra"
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(client, stop, task_queue=queue, plugin=plugin))
    extra = Worker(client, task_queue=extra_queue, workflows=list(workflows),
                   activities=list(activities)) if workflows or activities else None
    extra_run = asyncio.create_task(extra.run()) if extra else None
    running = [task for task in (serving, extra_run) if task is not None]
    try:
        await asyncio.sleep(0.5)
        for task in running:
            if task.done():
                task.result()  # a worker that failed to start says why
        yield extra_queue
    finally:
        stop.set()
        if extra is not None:
            await extra.shutdown()
        await asyncio.gather(*running, return_exceptions=True)
        sandboxes = host.sandboxes.sandboxes
        leftovers = await asyncio.to_thread(
            sandboxes.managed, **{LABEL_WORKER: plugin.settings.worker_id})
        for container in leftovers:
            await asyncio.to_thread(sandboxes.remove, container.id)
