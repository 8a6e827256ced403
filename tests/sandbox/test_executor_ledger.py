"""The executor's ledger of finished calls: bounded by the bytes it holds, not only by their
count, so a run of large outputs can't fill the sandbox's memory with old results."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from tether.contracts import SandboxSpec
from tether.sandbox.manager import SandboxBroken

from tests.helpers import sandboxes
from tests.sandbox.direct import call, direct_labels

MEMORY_MB = 128
LEDGER_BYTES = MEMORY_MB * (1 << 20) // 4
"""A quarter of the sandbox's memory (the executor keeps at most that, and 64 MiB)."""
OUTPUT_BYTES = 8 * (1 << 20)
BIG_OUTPUT = f"head -c {OUTPUT_BYTES} /dev/zero | tr '\\0' x"


@pytest.fixture
async def roomy_sandbox(docker_engine) -> AsyncIterator[str]:
    spec = SandboxSpec(memory_mb=MEMORY_MB, pids=64, disk_mb=16)
    container = await asyncio.to_thread(
        sandboxes().create, spec, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    yield container.id
    await asyncio.to_thread(sandboxes().remove, container.id)


async def test_large_results_push_the_oldest_out_of_the_ledger_by_bytes(roomy_sandbox: str):
    first = await call(roomy_sandbox, "echo first", key="first")
    assert first.stdout == "first\n"
    keys = [f"big-{n}" for n in range(LEDGER_BYTES // OUTPUT_BYTES + 1)]
    for key in keys:
        big = await call(roomy_sandbox, BIG_OUTPUT, key=key, limit=OUTPUT_BYTES, timeout=30)
        assert len(big.stdout) == OUTPUT_BYTES and not big.truncated
    with pytest.raises(SandboxBroken, match="call first ran already and its result is no longer kept"):
        await call(roomy_sandbox, "echo first", key="first")
    latest = await call(roomy_sandbox, "echo never runs", key=keys[-1], limit=OUTPUT_BYTES)
    assert latest.stdout == "x" * OUTPUT_BYTES  # the newest is still replayed, not run again
