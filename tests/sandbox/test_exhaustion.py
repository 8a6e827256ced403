"""Exhaustion stops at the tool, never at the sandbox: a full workspace fails the tool with
ENOSPC, a memory bomb kills the tool and not the executor, and afterwards the sandbox is the
same container (never restarted) with its files, serving the next call.

Straight through `sandbox.manager` (no run in between), under runc and under gVisor (runsc).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tether.contracts import SandboxSpec
from tether.sandbox.hardening import memory_limit_mb
from tether.sandbox.manager import ANSWER_TIMEOUT_S

from tests.helpers import sandboxes
from tests.sandbox.attacks import RUNTIMES, gvisor, require
from tests.sandbox.direct import call, direct_labels, file_call

pytestmark = pytest.mark.parametrize("runtime", RUNTIMES)

MEMORY_MB, DISK_MB = 256, 512
HOG = "chunks = []\nwhile True:\n    chunks.append(b'\\x01' * (8 << 20))"
"""A python tool that allocates 8 MiB at a time until something stops it."""
SIZE = "import os; print(os.path.getsize('/workspace/fill'))"


@asynccontextmanager
async def hardened(runtime: str, **spec: Any) -> AsyncIterator[str]:
    """A sandbox of `spec` (by default memory_mb 256, disk_mb 512) under `runtime`."""
    made = SandboxSpec(**{"memory_mb": MEMORY_MB, "disk_mb": DISK_MB, "pids": 64, **spec},
                       runtime=require(runtime))
    container = await asyncio.to_thread(
        sandboxes().create, made, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    try:
        yield container.id
    finally:
        await asyncio.to_thread(sandboxes().remove, container.id)


async def life(container_id: str) -> dict[str, Any]:
    """What tells one life of a sandbox from another: its start, restarts and executor."""
    state = await asyncio.to_thread(sandboxes().engine.api.inspect_container, container_id)
    ping = await asyncio.to_thread(
        lambda: sandboxes().channel(container_id).request({"op": "ping"}).result(ANSWER_TIMEOUT_S))
    return {"running": state["State"]["Running"], "started": state["State"]["StartedAt"],
            "restarts": state["RestartCount"], "executor": ping["result"]["pid"]}


async def assert_survived(container_id: str, before: dict[str, Any]) -> None:
    """The sandbox is the one it was: not restarted, same executor, its file kept, and the
    next call works."""
    assert await life(container_id) == before
    assert before["running"] and before["restarts"] == 0
    kept = await file_call(container_id, "read_file", path="keep.txt")
    assert kept.exit_code == 0 and kept.stdout == "kept", kept
    after = await call(container_id, "echo alive")
    assert after.exit_code == 0 and after.stdout == "alive\n", after


async def keep_a_file(container_id: str) -> dict[str, Any]:
    wrote = await file_call(container_id, "write_file", path="keep.txt", content="kept")
    assert wrote.exit_code == 0, wrote
    return await life(container_id)


async def test_filling_the_workspace_gives_the_tool_enospc_and_the_sandbox_lives_on(runtime: str):
    async with hardened(runtime) as sandbox:
        before = await keep_a_file(sandbox)
        fill = await call(sandbox, "dd if=/dev/zero of=/workspace/fill bs=1M count=600", timeout=60)
        assert fill.exit_code != 0 and "No space left on device" in fill.stderr, fill
        size = await call(sandbox, SIZE, tool="python")
        assert DISK_MB - 1 <= int(size.stdout) >> 20 <= DISK_MB, size
        await assert_survived(sandbox, before)
        # The space comes back when the file goes.
        again = await call(sandbox, "rm /workspace/fill && dd if=/dev/zero of=/workspace/fill bs=1M"
                           " count=100 2>&1 | tail -1", timeout=60)
        assert again.exit_code == 0 and "104857600 bytes" in again.stdout, again
        inspect = await asyncio.to_thread(sandboxes().engine.api.inspect_container, sandbox)
        limit = memory_limit_mb(SandboxSpec(memory_mb=MEMORY_MB, disk_mb=DISK_MB, runtime=runtime))
        assert inspect["HostConfig"]["Memory"] == limit << 20
        assert limit >= MEMORY_MB + DISK_MB  # the workspace's bytes take none of memory_mb


def assert_bomb_stopped(bomb: Any, runtime: str) -> None:
    """The memory bomb failed with the note that names memory_mb, not the container's limit."""
    assert not bomb.timed_out, bomb
    if gvisor(runtime):  # gVisor has no OOM killer inside: the tool's address space is capped
        assert bomb.exit_code == 1 and "MemoryError" in bomb.stderr, bomb
        assert f"out of memory at the sandbox's limit ({MEMORY_MB} MiB per process)" in bomb.stderr
    else:
        assert bomb.exit_code == 137, bomb
        assert f"killed at the sandbox's memory limit ({MEMORY_MB} MiB)" in bomb.stderr, bomb


async def test_a_memory_bomb_kills_the_tool_not_the_executor(runtime: str):
    async with hardened(runtime) as sandbox:
        before = await keep_a_file(sandbox)
        bomb = await call(sandbox, HOG, tool="python", timeout=60)
        assert_bomb_stopped(bomb, runtime)
        await assert_survived(sandbox, before)


async def test_a_memory_bomb_with_the_workspace_nearly_full_kills_only_the_tool(runtime: str):
    async with hardened(runtime) as sandbox:
        before = await keep_a_file(sandbox)
        fill = await call(sandbox, f"dd if=/dev/zero of=/workspace/fill bs=1M count={DISK_MB - 8}",
                          timeout=60)
        assert fill.exit_code == 0, fill
        bomb = await call(sandbox, HOG, tool="python", timeout=60)
        assert_bomb_stopped(bomb, runtime)
        await assert_survived(sandbox, before)
        size = await call(sandbox, SIZE, tool="python")
        assert int(size.stdout) == (DISK_MB - 8) << 20  # the workspace kept its bytes too


SWARM = """
for f in /workspace/fill /tmp/fill /dev/shm/fill; do dd if=/dev/zero of=$f bs=1M 2>/dev/null; done
for i in $(seq 28); do dd if=/dev/zero bs=6M count=2 2>/dev/null | sleep 8 & done
wait
"""
"""Every memory-backed mount full, then 28 processes of about 6 MiB each: past the limit,
and each smaller than the executor, so the OOM killer goes by score, not by size."""


async def test_many_small_processes_past_the_memory_limit_kill_tools_not_the_executor(runtime: str):
    if gvisor(runtime):
        pytest.skip("gVisor (Debian's 2022 runsc) has no OOM killer of its own: past the memory"
                    " limit the host kills the whole sandbox, which the run then replaces")
    async with hardened(runtime, memory_mb=64, disk_mb=16) as sandbox:
        before = await keep_a_file(sandbox)
        swarm = await call(sandbox, SWARM, timeout=60)
        assert "killed at the sandbox's memory limit (64 MiB)" in swarm.stderr, swarm
        await assert_survived(sandbox, before)


GUARDED = """
import json, os
executor = next(int(p) for p in os.listdir("/proc")  # the container's init
                if p.isdigit() and b"tether/executor" in open(f"/proc/{p}/cmdline", "rb").read())
seen = {"mine": int(open("/proc/self/oom_score_adj").read())}
for name, path, mode in [("raise_score", f"/proc/{executor}/oom_score_adj", "w"),
                         ("read_requests", f"/proc/{executor}/fd/0", "rb"),
                         ("forge_response", f"/proc/{executor}/fd/1", "w")]:
    try:
        with open(path, mode):
            seen[name] = "opened"
    except OSError as error:
        seen[name] = type(error).__name__
seen["executor"] = int(open(f"/proc/{executor}/oom_score_adj").read())
print(json.dumps(seen))
"""


async def test_tools_start_first_in_line_for_the_oom_killer_and_cannot_reach_the_executor(
    runtime: str,
):
    async with hardened(runtime, memory_mb=64, disk_mb=16) as sandbox:
        probe = await call(sandbox, GUARDED, tool="python")
        assert probe.exit_code == 0, probe
        seen = json.loads(probe.stdout)
        assert seen.pop("mine") == 1000 and seen.pop("executor") == 500
        assert seen.pop("raise_score") == "PermissionError"
        if not gvisor(runtime):  # gVisor (2022) opens a non-dumpable process's fds to its uid
            assert seen == {"read_requests": "PermissionError", "forge_response": "PermissionError"}
