"""Tool calls straight through `sandbox.manager` to the in-container executor: timeouts,
output caps, exactly-once per key, reattaching, file confinement, and a dead executor."""

from __future__ import annotations

import asyncio

import pytest
from tether.sandbox.channel import ChannelClosed
from tether.sandbox.manager import SandboxGone

from tests.helpers import kill_the_executor, sandboxes, wait_for
from tests.sandbox.direct import call, file_call, running_commands


async def test_a_timeout_kills_the_whole_process_group_and_the_container_stays_usable(sandbox: str):
    result = await call(sandbox, "sleep 100 & sleep 101 & echo started; wait", timeout=1)
    assert result.timed_out and result.exit_code == 137
    assert result.stdout == "started\n"
    assert "killed after the 1 s tool timeout" in result.stderr
    assert "sleep" not in await running_commands(sandbox)
    assert (await call(sandbox, "echo usable")).stdout == "usable\n"


async def test_output_is_capped_at_the_reader_keeping_head_and_tail(sandbox: str):
    code = "import sys; sys.stdout.write('H' * 1000 + 'M' * 100000 + 'T' * 1000)"
    result = await call(sandbox, code, tool="python", limit=2000)
    assert result.truncated
    assert result.stdout == "H" * 1000 + "\n[... 100000 bytes cut by tether ...]\n" + "T" * 1000


async def test_two_concurrent_calls_with_one_key_run_once(sandbox: str):
    command = "echo ran >> /workspace/runs; sleep 1; wc -l < /workspace/runs"
    first, second = await asyncio.gather(
        call(sandbox, command, key="same"), call(sandbox, command, key="same"))
    assert first == second
    assert first.stdout == "1\n"
    assert (await call(sandbox, "wc -l < /workspace/runs")).stdout == "1\n"


async def test_a_retry_of_a_finished_call_returns_the_recorded_result(sandbox: str):
    command = "echo ran >> /workspace/runs; date +%s%N"
    first = await call(sandbox, command, key="once")
    again = await call(sandbox, command, key="once")
    assert again == first  # the same nanosecond clock reading: recorded, not run again
    assert (await call(sandbox, "wc -l < /workspace/runs")).stdout == "1\n"


async def test_the_tool_sees_its_idempotency_key(sandbox: str):
    result = await call(sandbox, "echo $TETHER_IDEMPOTENCY_KEY", key="run-1/3/0")
    assert result.stdout == "run-1/3/0\n"


async def test_a_worker_that_lost_its_stream_mid_call_reattaches_and_gets_the_result(sandbox: str):
    command = "sleep 1; echo ran >> /workspace/runs; echo finished"
    in_flight = asyncio.ensure_future(call(sandbox, command, key="k"))
    await asyncio.sleep(0.3)
    sandboxes().forget_channel(sandbox)  # as if the worker died: its stream to the executor is gone
    with pytest.raises(ChannelClosed):
        await in_flight
    # A new attach (a new worker) asks for the same key: the call kept running, and is awaited.
    result = await call(sandbox, command, key="k")
    assert result.stdout == "finished\n"
    assert (await call(sandbox, "wc -l < /workspace/runs")).stdout == "1\n"


async def test_files_are_read_and_written_only_inside_the_workspace(sandbox: str):
    wrote = await file_call(sandbox, "write_file", path="notes/a.txt", content="hello")
    assert wrote.exit_code == 0
    assert (await file_call(sandbox, "read_file", path="notes/a.txt")).stdout == "hello"
    await call(sandbox, "ln -s / /workspace/root; ln -s /etc/hostname /workspace/host")
    for path in ("../etc/hostname", "/etc/hostname", "root/etc/hostname", "host", "notes/../../x"):
        read = await file_call(sandbox, "read_file", path=path)
        assert read.exit_code == 1 and "is outside /workspace" in read.stderr, path
    for path in ("../x", "/tmp/x", "root/tmp/x", "host"):
        written = await file_call(sandbox, "write_file", path=path, content="x")
        assert written.exit_code == 1 and "is outside /workspace" in written.stderr, path


async def test_a_file_read_is_capped_at_the_output_limit(sandbox: str):
    await call(sandbox, "head -c 1000 /dev/zero | tr '\\0' a > /workspace/big")
    read = await file_call(sandbox, "read_file", path="big")
    assert read.truncated and read.stdout == "a" * 64


async def test_a_tool_can_neither_kill_nor_interrupt_the_executor(sandbox: str):
    def executor_pid() -> int:
        answer = sandboxes().channel(sandbox).request({"op": "ping"}).result(timeout=5)
        return int(answer["result"]["pid"])

    before = executor_pid()
    # The executor is the container's init: inside, only signals it handles reach it.
    tried = await call(sandbox, "for s in KILL INT TERM HUP USR1 SEGV; do kill -s $s 1; done; echo tried")
    assert tried.stdout == "tried\n"
    assert (await call(sandbox, "echo alive")).stdout == "alive\n"
    assert executor_pid() == before == 1


async def test_an_executor_killed_from_outside_loses_the_sandbox_not_the_worker(sandbox: str):
    async def kill_it_soon() -> None:
        await asyncio.sleep(0.5)
        await kill_the_executor(sandbox)

    killing = asyncio.create_task(kill_it_soon())
    with pytest.raises(ChannelClosed):
        await call(sandbox, "sleep 5")
    await killing

    def restarted() -> bool:
        state = sandboxes().engine.api.inspect_container(sandbox)
        return state["RestartCount"] > 0 and state["State"]["Status"] == "running"

    await wait_for(restarted, what="the engine to restart the sandbox")
    # Restarted means emptied: it must not answer for calls its first life recorded.
    with pytest.raises(SandboxGone, match="restarted"):
        await call(sandbox, "echo again")
