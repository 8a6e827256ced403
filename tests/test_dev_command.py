"""`tether dev` as a person runs it: joining a server it did not start says so (and, with
keys, that this server's Web UI was not given its codec server); Ctrl-C while a run waits
for approval says what the worker waits for, and a second Ctrl-C stops at once without
losing the run, which the next `tether dev` takes up where it was."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from tether import client as tether
from tether.encryption import KeyRing
from tether.settings import TetherSettings

from tests.helpers import ROOT, free_port, wait_for
from tests.scripts import scripted_run, turn


class Dev:
    """A `tether dev` process with its output read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output = ""

    async def until(self, text: str, timeout: float = 120) -> None:
        """Reads the output until `text` shows (or fails the test, with what it read)."""
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while text not in self.output:
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), deadline - loop.time())
            except TimeoutError:
                pytest.fail(f"`tether dev` did not print {text!r} in {timeout:g} s: {self.output}")
            assert line, f"`tether dev` ended before printing {text!r}: {self.output}"
            self.output += line.decode(errors="replace")

    async def ended(self, timeout: float) -> int | None:
        """Its exit code, with the rest of its output read; None if still running at `timeout`."""
        assert self.process.stdout is not None
        with contextlib.suppress(TimeoutError):
            rest = await asyncio.wait_for(self.process.stdout.read(), timeout)
            self.output += rest.decode(errors="replace")
            return await self.process.wait()
        return None


@contextlib.asynccontextmanager
async def tether_dev(env: dict[str, str], *args: str) -> AsyncIterator[Dev]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "dev", *args, cwd=ROOT, env={**os.environ, **env},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    try:
        yield Dev(process)
    finally:
        if process.returncode is None:  # the test failed: its whole group goes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def test_tether_dev_joining_a_running_server_says_so_and_that_its_web_ui_lacks_the_codec(
    temporal_address: str, docker_engine
):
    env = {"TEMPORAL_ADDRESS": temporal_address, "TETHER_TASK_QUEUE": f"dev-{uuid.uuid4().hex[:8]}",
           "TETHER_WORKER_ID": f"dev-{uuid.uuid4().hex[:8]}", "TETHER_UI_PORT": str(free_port()),
           "TETHER_ENCRYPTION_KEYS": KeyRing.generate("dev"), "COLUMNS": "200"}
    async with tether_dev(env, "--codec-endpoint", f"http://localhost:{free_port()}") as dev:
        await dev.until(f"using the Temporal server already running at {temporal_address}")
        await dev.until("its web UI was not given this codec server")
        dev.process.send_signal(signal.SIGINT)
        assert await dev.ended(120) == 0, dev.output
    assert "Traceback" not in dev.output, dev.output


async def waiting_for_approval(client: Client, run_id: str) -> bool:
    status = await tether.get_status(client, run_id)
    return status.state == "awaiting_approval"


async def test_a_second_ctrl_c_stops_tether_dev_at_once_and_the_next_one_finishes_the_run(
    tmp_path: Path, docker_engine
):
    address = f"127.0.0.1:{free_port()}"
    queue = f"dev-{uuid.uuid4().hex[:8]}"
    env = {"TEMPORAL_ADDRESS": address, "TETHER_TASK_QUEUE": queue, "TETHER_WORKER_ID": queue,
           "TETHER_UI_PORT": str(free_port()), "TETHER_DATA_DIR": str(tmp_path), "COLUMNS": "200",
           # Longer than this test waits for the second Ctrl-C to work: a worker that drained
           # instead of stopping would still be running.
           "TETHER_DRAIN_SECONDS": "600"}
    async with tether_dev(env) as dev:
        await dev.until("serving")  # the worker's log line, once it polls
        client = await tether.connect(TetherSettings(), address=address)
        handle = await tether.start_run(client, scripted_run(
            "keep", turn(python="open('kept.txt', 'w').write('still here')"),
            turn(shell="cat kept.txt"), turn("{{last_output}}"), approval={"tools": ["shell"]}),
            task_queue=queue)
        await wait_for(lambda: waiting_for_approval(client, handle.id), timeout=60,
                       what="the run to wait for approval")
        dev.process.send_signal(signal.SIGINT)
        await dev.until("Ctrl-C again", timeout=30)
        assert "drain" in dev.output and "600 s" in dev.output, dev.output
        dev.process.send_signal(signal.SIGINT)
        assert await dev.ended(60) is not None, f"a second Ctrl-C did not stop it: {dev.output}"
    assert "Traceback" not in dev.output, dev.output

    async with tether_dev(env) as again:
        await again.until("serving")
        client = await tether.connect(TetherSettings(), address=address)
        await wait_for(lambda: waiting_for_approval(client, handle.id), timeout=60,
                       what="the run to wait for approval again")
        await tether.approve(client, handle.id, "2-0")
        result = await asyncio.wait_for(tether.get_run(client, handle.id).result(), 120)
        assert result.status == "completed" and result.output == "still here", result
        again.process.send_signal(signal.SIGINT)
        assert await again.ended(120) == 0, again.output


def processes_of(queue: str) -> list[int]:
    """Processes started with TETHER_TASK_QUEUE=`queue` (what `tether dev` started with it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"TETHER_TASK_QUEUE={queue}".encode() in environment:
                found.append(int(pid))
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_tether_dev_stopped_by_a_signal_or_its_terminal_stops_what_it_started(
    tmp_path: Path, docker_engine, sig: signal.Signals
):
    address = f"127.0.0.1:{free_port()}"
    queue = f"dev-{uuid.uuid4().hex[:8]}"
    env = {"TEMPORAL_ADDRESS": address, "TETHER_TASK_QUEUE": queue, "TETHER_WORKER_ID": queue,
           "TETHER_UI_PORT": str(free_port()), "TETHER_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    async with tether_dev(env) as dev:
        await dev.until("serving")
        assert len(processes_of(queue)) >= 3, dev.output  # itself, the server, the worker
        dev.process.send_signal(sig)
        assert await dev.ended(120) is not None, dev.output
    await wait_for(lambda: not processes_of(queue), timeout=60,
                   what=f"what tether dev started to stop: {processes_of(queue)}")


async def test_ctrl_c_at_any_moment_of_tether_devs_start_stops_all_it_started(
    temporal_address: str, docker_engine
):
    # Each delay lands Ctrl-C at another moment of the start: while the codec server or the
    # worker is being started (tests/unit/test_start_process.py holds that moment still),
    # or while the worker imports its modules, where a SIGINT once printed a traceback.
    for delay in (0.0, 0.05, 0.15, 0.3, 0.6, 1.2):
        queue = f"dev-{uuid.uuid4().hex[:8]}"
        env = {"TEMPORAL_ADDRESS": temporal_address, "TETHER_TASK_QUEUE": queue,
               "TETHER_WORKER_ID": queue, "TETHER_UI_PORT": str(free_port()),
               "TETHER_ENCRYPTION_KEYS": KeyRing.generate("dev"), "COLUMNS": "200"}
        async with tether_dev(env, "--codec-endpoint", f"http://localhost:{free_port()}") as dev:
            await dev.until(f"using the Temporal server already running at {temporal_address}")
            await asyncio.sleep(delay)
            dev.process.send_signal(signal.SIGINT)
            # Its output ends only when every process that shares it has gone.
            assert await dev.ended(60) is not None, f"after {delay} s: {dev.output}"
        await wait_for(lambda queue=queue: not processes_of(queue), timeout=30,
                       what=f"what tether dev started to stop (Ctrl-C after {delay} s)")
        assert "Traceback" not in dev.output, dev.output
