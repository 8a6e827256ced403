"""Fixtures for the sandbox tests: hardened containers made directly through `sandbox.manager`,
with no run and no worker in between, for the tests that talk to the executor itself.

They carry a worker label of their own, so the suite worker's reaper never judges them, and
each is removed when its test ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from tether.contracts import SandboxSpec
from tether.sandbox.manager import LABEL_WORKER

from tests.helpers import sandboxes
from tests.sandbox.direct import DIRECT_WORKER, direct_labels


@pytest.fixture
async def sandbox(docker_engine) -> AsyncIterator[str]:
    """A small hardened sandbox; yields its container id."""
    spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=16)
    container = await asyncio.to_thread(
        sandboxes().create, spec, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    yield container.id
    await asyncio.to_thread(sandboxes().remove, container.id)


@pytest.fixture(autouse=True)
async def no_direct_leftovers(docker_engine) -> AsyncIterator[None]:
    """Removes whatever a test made directly and failed to remove, and says so."""
    yield
    leftovers = await asyncio.to_thread(sandboxes().managed, **{LABEL_WORKER: DIRECT_WORKER})
    for container in leftovers:
        await asyncio.to_thread(sandboxes().remove, container.id)
    assert not leftovers, f"left behind: {[c.name for c in leftovers]}"
