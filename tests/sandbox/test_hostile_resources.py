"""Hostile inputs that go after resources: processes, memory, disk, CPU time, output, and
processes left behind. Each runs as a real AgentRun beside a benign one (`attack`), under
runc and under gVisor (runsc)."""

from __future__ import annotations

import json

import pytest
from temporalio.client import Client

from tests.sandbox.attacks import PROCESSES, RUNTIMES, SMALL, attack, gvisor, leftovers
from tests.scripts import turn

pytestmark = pytest.mark.parametrize("runtime", RUNTIMES)

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


GVISOR_FORK_BOMB = (
    "a known limit of Debian's runsc (2022) on the ptrace platform, the only one here (no nested"
    " KVM): each sandboxed process costs host stub processes, reclaimed slowly, so a fork bomb"
    " exhausts the container's host pids and memory and the whole sandbox is lost (the run"
    " replaces it); gVisor's kernel does hold the tools to `pids` processes (RLIMIT_NPROC)")


async def test_a_fork_bomb_is_held_at_the_pids_limit_and_killed_at_the_timeout(
    temporal_client: Client, worker: str, runtime: str
):
    if gvisor(runtime):
        pytest.skip(GVISOR_FORK_BOMB)
    bomb, after = await attack(temporal_client, worker, turn(python=FORK_BOMB), turn(python=PROCESSES),
                               runtime=runtime)
    assert bomb.timed_out and bomb.exit_code == 137
    assert "killed after the 3 s tool timeout" in bomb.stderr
    assert f"refused at the sandbox's limit of {SMALL['pids']} processes" in bomb.stderr
    assert after.exit_code == 0, after
    assert leftovers(json.loads(after.stdout)) == []


async def test_a_memory_bomb_is_killed_at_the_memory_limit(
    temporal_client: Client, worker: str, runtime: str
):
    hog = "chunks = []\nwhile True:\n    chunks.append(b\"\\x01\" * (8 << 20))"
    bomb, after = await attack(temporal_client, worker, turn(python=hog), turn(shell="echo alive"),
                               runtime=runtime)
    assert not bomb.timed_out
    if gvisor(runtime):  # no OOM killer inside gVisor: the tool's address space is capped
        assert bomb.exit_code == 1 and "MemoryError" in bomb.stderr
        assert f"out of memory at the sandbox's limit ({SMALL['memory_mb']} MiB per process)" in bomb.stderr
    else:
        assert bomb.exit_code == 137
        assert f"killed at the sandbox's memory limit ({SMALL['memory_mb']} MiB)" in bomb.stderr
    assert after.stdout == "alive\n"


async def test_filling_the_disk_stops_at_the_workspace_size(
    temporal_client: Client, worker: str, runtime: str
):
    fill, size = await attack(
        temporal_client, worker,
        turn(shell="dd if=/dev/zero of=/workspace/fill bs=1M count=64"),
        turn(python="import os; s = os.statvfs('/workspace'); print(s.f_blocks * s.f_frsize)"),
        runtime=runtime,
    )
    assert fill.exit_code != 0
    assert "No space left on device" in fill.stderr
    assert int(size.stdout) == SMALL["disk_mb"] << 20


async def test_a_run_that_fills_its_workspace_keeps_its_sandbox_and_its_files(
    temporal_client: Client, worker: str, runtime: str
):
    """Issue 10's report: a 600 MB `dd` into a 512 MB workspace of a 256 MB sandbox used to
    starve the executor, and the run lost its sandbox (and its files) twice."""
    kept, fill, after = await attack(
        temporal_client, worker,
        turn(write_file={"path": "keep.txt", "content": "kept"}),
        turn(shell="dd if=/dev/zero of=/workspace/fill bs=1M count=600"),
        turn(shell="cat keep.txt && rm fill && echo alive"),
        sandbox={"memory_mb": 256, "disk_mb": 512, "tool_timeout_seconds": 60}, runtime=runtime)
    assert kept.exit_code == 0
    assert fill.exit_code != 0 and "No space left on device" in fill.stderr, fill
    # The same sandbox: a replacement would have neither file.
    assert after.exit_code == 0 and after.stdout == "keptalive\n", after


async def test_an_infinite_loop_is_killed_at_the_timeout(
    temporal_client: Client, worker: str, runtime: str
):
    loop, after = await attack(temporal_client, worker, turn(python="while True:\n    pass"),
                               turn(shell="echo alive"), runtime=runtime)
    assert loop.timed_out and loop.exit_code == 137
    assert "killed after the 3 s tool timeout" in loop.stderr
    assert after.stdout == "alive\n"


async def test_200_mb_of_output_is_capped_at_the_reader(
    temporal_client: Client, worker: str, runtime: str
):
    limit = SMALL["output_limit_bytes"]
    [flood] = await attack(
        temporal_client, worker, turn(shell="head -c 200000000 /dev/zero | tr '\\0' x"),
        sandbox={"tool_timeout_seconds": 60}, runtime=runtime)
    assert flood.exit_code == 0 and flood.truncated and not flood.timed_out
    head, marker, tail = flood.stdout.split("\n")
    assert head == "x" * (limit // 2) and tail == "x" * (limit // 2)
    assert marker == f"[... {200_000_000 - limit} bytes cut by tether ...]"
    # What the worker held, and what the model reads, is the cap, not the 200 MB.
    assert len(flood.model_dump_json()) < 2 * limit


async def test_sleeping_past_the_timeout_is_killed_and_reported(
    temporal_client: Client, worker: str, runtime: str
):
    sleeper, after = await attack(
        temporal_client, worker, turn(shell="sleep 60"), turn(python=PROCESSES), runtime=runtime)
    assert sleeper.timed_out and sleeper.exit_code == 137
    assert "killed after the 3 s tool timeout" in sleeper.stderr
    assert sleeper.duration_ms < 30_000
    assert leftovers(json.loads(after.stdout)) == []


LEAVE_THINGS_BEHIND = """
import os, subprocess, time
subprocess.Popen(["sleep", "300"])                      # a plain background child
subprocess.Popen(["sleep", "301"], start_new_session=True)  # a setsid escapee
if os.fork() == 0:                                      # a double-forked daemon...
    os.setsid()
    if os.fork() == 0:
        if os.fork() == 0:                              # ...whose child exits unreaped: a zombie
            os._exit(0)
        time.sleep(300)
    os._exit(0)
time.sleep(0.5)
print("left things behind")
"""


async def test_background_processes_and_zombies_are_gone_when_the_call_returns(
    temporal_client: Client, worker: str, runtime: str
):
    left, after = await attack(
        temporal_client, worker, turn(python=LEAVE_THINGS_BEHIND), turn(python=PROCESSES), runtime=runtime)
    assert left.exit_code == 0 and left.stdout == "left things behind\n"
    assert leftovers(json.loads(after.stdout)) == []
