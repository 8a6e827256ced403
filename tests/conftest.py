"""The real parts every test runs against: a Temporal dev server started for the session,
the machine's Docker engine, and a tether worker on a task queue of its own.

Nothing is mocked. A missing Docker engine or sandbox image fails the suite with a message
saying how to fix it; `make test` sets both up.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

# Before tether's modules read them: a store and worker identity of the suite's own, so
# tests never touch a developer's .tether/ or a demo worker's queue.
_DATA = tempfile.mkdtemp(prefix="tether-tests-")
os.environ["TETHER_DATA_DIR"] = _DATA
os.environ.setdefault("TETHER_WORKER_ID", f"tests-{uuid.uuid4().hex[:8]}")

from temporalio.client import Client  # noqa: E402

import client as tether_client  # noqa: E402
from embedded import temporal as embedded  # noqa: E402
from sandbox.engine import engine  # noqa: E402
from sandbox.manager import list_sandboxes, remove_sandbox, sandboxes_for_run  # noqa: E402
from worker import serve  # noqa: E402

SANDBOX_IMAGE = "tether-sandbox:latest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def docker_engine():
    client = engine()
    try:
        client.images.get(SANDBOX_IMAGE)
    except Exception:
        pytest.fail(f"the sandbox image {SANDBOX_IMAGE} is missing: run `make image`")
    return client


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    port = free_port()
    process = embedded.start(port=port, ui_port=None, db_file=None,
                             log_file=None, wait_seconds=90)
    address = f"127.0.0.1:{port}"
    os.environ["TEMPORAL_ADDRESS"] = address
    yield address
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
async def temporal_client(temporal_address: str) -> Client:
    return await tether_client.connect(temporal_address)


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"tests-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def worker(temporal_client: Client, task_queue: str, docker_engine) -> AsyncIterator[str]:
    """A tether worker serving `task_queue` for the whole session; yields the queue."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(temporal_client, stop, task_queue=task_queue))
    await asyncio.sleep(0.5)
    if task.done():
        task.result()
    yield task_queue
    stop.set()
    await task
    leftovers = list_sandboxes(**{"tether.worker": os.environ["TETHER_WORKER_ID"]})
    for container in leftovers:
        remove_sandbox(container.id)
    assert not leftovers, f"sandboxes left behind: {[c.name for c in leftovers]}"


def sandboxes_of(workflow_id: str) -> list:
    return sandboxes_for_run(workflow_id)


async def wait_for(predicate, *, timeout: float = 30, every: float = 0.1, what: str = "") -> None:
    """Polls `predicate` (sync or async) until it is true, or fails the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(every)


async def history_text(handle) -> str:
    """A run's whole event history as text, with every payload decoded: the JSON form keeps
    payloads base64-encoded, where a search for a secret would find nothing either way."""
    import base64
    import json

    from google.protobuf.json_format import MessageToDict

    def decoded(node):
        if isinstance(node, dict):
            return {k: (base64.b64decode(v).decode("utf-8", "replace")
                        if k == "data" and isinstance(v, str) else decoded(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [decoded(item) for item in node]
        return node

    history = await handle.fetch_history()
    return json.dumps([decoded(MessageToDict(event)) for event in history.events])
