"""The real parts every test runs against: a Temporal dev server started for the session,
the machine's Docker engine, and a tether worker on a task queue of its own.

Nothing is mocked. A missing Docker engine or sandbox image fails the suite with a message
saying how to fix it; `make test` sets both up.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

# Before tether's modules read them: a store and worker identity of the suite's own, so
# tests never touch a developer's .tether/ or a demo worker's queue.
_DATA = tempfile.mkdtemp(prefix="tether-tests-")
os.environ["TETHER_DATA_DIR"] = _DATA
os.environ.setdefault("TETHER_WORKER_ID", f"tests-{uuid.uuid4().hex[:8]}")
# A file cap of the suite's own, at 64 MiB: the largest file tests move is exactly that, and
# one just over it stays cheap to make (the default is a GiB).
os.environ.setdefault("TETHER_MAX_FILE_MB", "64")
# The function tools the suite's workers serve (tests/tools_*.py).
os.environ.setdefault("TETHER_TOOLS", "tests.tools_plain,tests.tools_decorated")

from temporalio.client import Client  # noqa: E402
from tether import client as tether_client  # noqa: E402
from tether.embedded import temporal as embedded  # noqa: E402
from tether.plugin import TetherPlugin  # noqa: E402
from tether.worker import serve  # noqa: E402

from tests import endpoints  # noqa: E402
from tests.helpers import free_port, sandboxes, suite_settings  # noqa: E402, sandboxes

# Before the suite's settings are read: the endpoints and MCP servers its worker is
# configured with, the only ones a run may name.
endpoints.configure(os.environ)

SANDBOX_IMAGE = "tether-sandbox:latest"


@pytest.fixture(scope="session")
def docker_engine():
    client = sandboxes().engine
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
    return await tether_client.connect(address=temporal_address)


@pytest.fixture(scope="session")
def task_queue() -> str:
    return f"tests-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def tether_plugin(docker_engine) -> TetherPlugin:
    """The suite worker's plugin: what it built (its warm pool, its activities) is here."""
    return TetherPlugin(suite_settings())


@pytest.fixture(scope="session")
async def worker(temporal_client: Client, task_queue: str, tether_plugin: TetherPlugin) -> AsyncIterator[str]:
    """A tether worker serving `task_queue` for the whole session; yields the queue."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(temporal_client, stop, task_queue=task_queue, plugin=tether_plugin))
    await asyncio.sleep(0.5)
    if task.done():
        task.result()
    yield task_queue
    stop.set()
    await task
    leftovers = sandboxes().managed(**{"tether.worker": os.environ["TETHER_WORKER_ID"]})
    for container in leftovers:
        sandboxes().remove(container.id)
    assert not leftovers, f"sandboxes left behind: {[c.name for c in leftovers]}"
