"""A private Temporal dev server and tether worker for one benchmark.

Headless and in memory on a free port, with a data dir and worker identity of its own, so a
benchmark never touches a developer's `.tether/`, server or sandboxes, and leaves nothing
behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from tether import client as tether_client
from tether.embedded import temporal as embedded
from tether.sandbox.manager import list_sandboxes, remove_sandbox
from tether.worker import serve


@dataclass
class Stack:
    client: Client
    task_queue: str
    """The tether worker's shared queue; its sandbox queue is `settings.host_task_queue()`."""
    extra_queue: str
    """The queue of the benchmark's own workflows and activities, if it gave any."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def isolated_environment(name: str) -> Iterator[Path]:
    """A fresh data dir and worker id for tether's settings, restored afterwards. tether
    reads its settings when it uses them, so setting them here, before the server and
    worker start, is enough.

    `store.conversations().blobs` keeps the first directory it is opened with, so a benchmark
    that runs after another in the same process shares that one's store. That is harmless:
    blobs are named by their digest, and a missing directory is made again on `put`.
    """
    names = ("TETHER_DATA_DIR", "TETHER_STORE_DIR", "TETHER_WORKER_ID")
    saved = {key: os.environ.get(key) for key in names}
    data_dir = Path(tempfile.mkdtemp(prefix=f"tether-bench-{name}-"))
    os.environ["TETHER_DATA_DIR"] = str(data_dir)
    os.environ.pop("TETHER_STORE_DIR", None)
    os.environ["TETHER_WORKER_ID"] = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    try:
        yield data_dir
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(data_dir, ignore_errors=True)


@asynccontextmanager
async def local_stack(
    name: str, *, workflows: Sequence[type] = (), activities: Sequence[Any] = (),
) -> AsyncIterator[Stack]:
    """Starts a dev server and a tether worker; `workflows` and `activities`, when given,
    run on a worker of their own, so tether's worker only ever sees its own types."""
    with isolated_environment(name):
        port = free_port()
        server = await asyncio.to_thread(embedded.start, port=port, ui_port=None, db_file=None,
                                         wait_seconds=90)
        try:
            client = await tether_client.connect(f"127.0.0.1:{port}")
            async with _workers(client, name, workflows, activities) as (queue, extra_queue):
                yield Stack(client, queue, extra_queue)
        finally:
            server.terminate()
            await asyncio.to_thread(server.wait, 30)


@asynccontextmanager
async def _workers(
    client: Client, name: str, workflows: Sequence[type], activities: Sequence[Any],
) -> AsyncIterator[tuple[str, str]]:
    queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    extra_queue = f"{queue}-extra"
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(client, stop, task_queue=queue))
    extra = Worker(client, task_queue=extra_queue, workflows=list(workflows),
                   activities=list(activities)) if workflows or activities else None
    extra_run = asyncio.create_task(extra.run()) if extra else None
    running = [task for task in (serving, extra_run) if task is not None]
    try:
        await asyncio.sleep(0.5)
        for task in running:
            if task.done():
                task.result()  # a worker that failed to start says why
        yield queue, extra_queue
    finally:
        stop.set()
        if extra is not None:
            await extra.shutdown()
        await asyncio.gather(*running, return_exceptions=True)
        for container in sandboxes().managed(**{"tether.worker": os.environ["TETHER_WORKER_ID"]}):
            sandboxes().remove(container.id)
