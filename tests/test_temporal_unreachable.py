"""The Temporal server unreachable: workers keep trying and recover on their own, and every
`tether` command that needs the server says, in one line, which server it could not reach
and what to check, without a traceback.

The outage test runs its own dev server (SQLite in the test's directory) so that it can
kill it with SIGKILL and start it again on the same port and database, and its own worker
as a process (`python -m tether.worker`), as in production.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import typer
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from tether import client as tether
from tether import worker as worker_module
from tether.embedded import temporal as embedded
from tether.settings import TetherSettings

from tests.helpers import free_port, sandboxes, wait_for
from tests.scripts import scripted_run, turn

ROOT = Path(__file__).resolve().parents[1]


# -- a dev server and a worker process of the test's own (the secret canary uses them too) --

class DevServer:
    """`temporal server start-dev` on a port and SQLite file of the test's own."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.db_file = directory / "t.db"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = embedded.start(port=self.port, ui_port=None, db_file=self.db_file,
                                      log_file=None, wait_seconds=90)

    def kill(self) -> None:
        """SIGKILL: no shutdown, as a crash or an OOM kill would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


class WorkerSubprocess:
    """`python -m tether.worker` with an environment and a log file of its own."""

    def __init__(self, *, address: str, data_dir: Path, log_file: Path,
                 env: Mapping[str, str | None] | None = None) -> None:
        """`env` is added to the test's environment; a None there removes the variable."""
        self.queue = f"down-{uuid.uuid4().hex[:8]}"
        self.worker_id = self.queue
        self.log_file = log_file
        merged = {**os.environ, "TEMPORAL_ADDRESS": address, "TETHER_TASK_QUEUE": self.queue,
                  "TETHER_WORKER_ID": self.worker_id, "TETHER_DATA_DIR": str(data_dir), **(env or {})}
        self.env = {name: value for name, value in merged.items() if value is not None}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *command: str) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *(command or ("-m", "tether.worker"))], cwd=ROOT, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def polling(self, client: Client) -> bool:
        """Whether this process polls its host's queue (pollers are named `<pid>@<host>`)."""
        assert self.process is not None
        described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=f"{self.queue}@{self.worker_id}"),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
        return any(p.identity.startswith(f"{self.process.pid}@") for p in described.pollers)

    async def wait_polling(self, client: Client, timeout: float = 60) -> None:
        async def ready() -> bool:
            assert self.alive, f"the worker exited: {self.log()}"
            return await self.polling(client)
        await wait_for(ready, timeout=timeout, every=0.2, what="the worker to poll its queues")

    async def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, as Ctrl-C or an orchestrator would; SIGKILL if it does not stop in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout)
            except TimeoutError:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def remove_sandboxes(self) -> list[str]:
        """Removes the containers this worker left, and names them (there should be none)."""
        left = sandboxes().managed(**{"tether.worker": self.worker_id})
        for container in left:
            sandboxes().remove(container.id)
        return [c.name for c in left]


def unreachable_lines(log: str, address: str) -> list[str]:
    return [line for line in log.splitlines()
            if f"the Temporal server at {address} is unreachable" in line and "retrying" in line]


# -- every command: one line, exit code 2, no traceback --

COMMANDS = {
    "status": ["status", "run-x"],
    "status --json": ["status", "run-x", "--json"],
    "transcript": ["transcript", "run-x"],
    "run": ["run", "hello", "--model", "scripted:examples/demo.json"],
    "run --wait --json": ["run", "hello", "--model", "scripted:examples/demo.json", "--wait", "--json"],
    "approve": ["approve", "run-x", "call-1"],
    "approve --deny": ["approve", "run-x", "call-1", "--deny"],
    "cancel": ["cancel", "run-x"],
    "message": ["message", "run-x", "hello"],
    "extend": ["extend", "run-x", "--steps", "3"],
    "demo": ["demo"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_command_says_in_one_line_that_the_server_is_unreachable_and_what_to_check(
    command: list[str],
):
    closed = f"127.0.0.1:{free_port()}"  # bound a moment ago, closed: nothing listens there
    done = subprocess.run([sys.executable, "-m", "tether.cli", *command], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "TEMPORAL_ADDRESS": closed})
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: the Temporal server at {closed} is unreachable"), line
    assert "`tether server`" in line and "`tether dev`" in line and "TEMPORAL_ADDRESS" in line


@pytest.mark.parametrize("error", [
    RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b""),
    RuntimeError("query failed"),
], ids=["the server's own error", "caused by it"])
def test_a_server_lost_in_the_middle_of_a_command_is_the_same_one_line(
    error: Exception, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
):
    from tether.cli import context, errors

    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7999")
    context.settings.cache_clear()
    if not isinstance(error, RPCError):
        error.__cause__ = RPCError("Connection refused", RPCStatusCode.UNAVAILABLE, b"")
    try:
        with pytest.raises(typer.Exit) as exited:
            errors.unreachable(error)
    finally:
        context.settings.cache_clear()
    assert exited.value.exit_code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: the Temporal server at 127.0.0.1:7999 is unreachable: "), line
    assert "TEMPORAL_ADDRESS" in line


def test_another_failure_of_a_command_is_not_called_unreachable():
    from tether.cli import errors

    errors.unreachable(RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b""))  # no exit
    errors.unreachable(ConnectionError("the Docker engine refused"))


# -- the worker: waits for its server at start, starts again when it loses it --

async def test_a_worker_waiting_for_its_server_logs_one_line_per_attempt_and_stops_on_a_signal(
    tmp_path: Path,
):
    """`tether worker` (the CLI's command) against a closed port: it keeps trying, and
    SIGTERM stops it at once with exit code 0."""
    closed = f"127.0.0.1:{free_port()}"
    worker = WorkerSubprocess(address=closed, data_dir=tmp_path, log_file=tmp_path / "worker.log")
    worker.start("-m", "tether.cli", "worker")
    try:
        await wait_for(lambda: len(unreachable_lines(worker.log(), closed)) >= 2 or not worker.alive,
                       timeout=30, what="two attempts to connect")
        assert worker.alive, worker.log()
        started = time.monotonic()
        assert await worker.stop() == 0
        assert time.monotonic() - started < 5
    finally:
        await worker.stop()
    log = worker.log()
    assert "Traceback" not in log
    lines = unreachable_lines(log, closed)
    assert [f"(attempt {n})" in line for n, line in enumerate(lines, 1)] == [True] * len(lines), log
    assert "retrying in 1 s (attempt 1)" in lines[0] and "retrying in 2 s (attempt 2)" in lines[1]


async def test_a_worker_whose_server_is_lost_connects_again_and_starts_a_new_worker(
    temporal_address: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
):
    """Should the SDK's worker fail because the server went away (it normally rides an outage
    out, retrying its polls), the process reconnects and serves again instead of exiting."""
    calls: list[Client] = []

    async def serve(client: Client, stop: asyncio.Event, **_: object) -> None:
        calls.append(client)
        if len(calls) == 1:
            lost = RPCError("tcp connect error", RPCStatusCode.UNAVAILABLE, b"")
            raise RuntimeError("Worker failed") from lost
        stop.set()

    monkeypatch.setattr(worker_module, "serve", serve)
    monkeypatch.setattr(worker_module, "RETRY_FIRST_SECONDS", 0.1)
    caplog.set_level(logging.INFO, "tether.worker")
    settings = TetherSettings(temporal_address=temporal_address)
    await asyncio.wait_for(worker_module.run_until_stopped(settings, asyncio.Event()), timeout=30)
    assert len(calls) == 2 and calls[0] is not calls[1]  # a new client, a new worker
    assert any(f"the Temporal server at {temporal_address} was lost" in r.getMessage()
               for r in caplog.records)


async def test_a_worker_that_fails_for_another_reason_stops_with_its_error(
    temporal_address: str, monkeypatch: pytest.MonkeyPatch,
):
    async def serve(client: Client, stop: asyncio.Event, **_: object) -> None:
        raise RuntimeError("no Docker engine answers at unix:///var/run/docker.sock")

    monkeypatch.setattr(worker_module, "serve", serve)
    settings = TetherSettings(temporal_address=temporal_address)
    with pytest.raises(RuntimeError, match="no Docker engine"):
        await asyncio.wait_for(worker_module.run_until_stopped(settings, asyncio.Event()), timeout=30)


@pytest.fixture
async def outage_parts(tmp_path: Path) -> AsyncIterator[tuple[DevServer, WorkerSubprocess]]:
    server = DevServer(tmp_path)
    worker = WorkerSubprocess(address=server.address, data_dir=tmp_path / "data",
                              log_file=tmp_path / "worker.log")
    try:
        yield server, worker
    finally:
        code = await worker.stop()
        server.stop()
        left = worker.remove_sandboxes()
    assert code in (0, None), worker.log()[-4000:]
    assert not left, f"sandboxes left behind: {left}"


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_worker_started_before_its_server_and_then_losing_it_for_30_s_recovers_alone(
    outage_parts: tuple[DevServer, WorkerSubprocess],
):
    server, worker = outage_parts
    # Started while no server answers: it keeps trying, a line per attempt.
    worker.start()
    await wait_for(lambda: len(unreachable_lines(worker.log(), server.address)) >= 2
                   or not worker.alive, timeout=30, what="two attempts to connect")
    assert worker.alive, worker.log()
    server.start()
    client = await tether.connect(address=server.address)
    await worker.wait_polling(client)
    first = await tether.run(client, scripted_run("before", turn(shell="echo before"), turn("ok")),
                             task_queue=worker.queue)
    assert first.status == "completed", first

    # A run in the middle of a tool call when the server dies.
    in_flight = await tether.start_run(client, scripted_run(
        "across the outage",
        turn(shell="echo 1 >> calls.log"),
        turn(shell="echo 2 >> calls.log; sleep 5"),
        turn(read_file="calls.log"),
        turn("{{last_output}}"),
    ), task_queue=worker.queue)
    await wait_for(lambda: step_of(client, in_flight.id, 2), timeout=60, what="step 2")
    await asyncio.sleep(1.5)

    server.kill()
    killed = time.monotonic()
    await asyncio.sleep(29)  # and the restart takes a moment: down for about 30 s
    server.start()
    back = time.monotonic()
    outage = back - killed
    assert outage <= 35, outage  # 30 s, and a slow start on a busy machine
    assert worker.alive, worker.log()[-4000:]

    client = await tether.connect(address=server.address)
    await worker.wait_polling(client, timeout=60)
    polling_again = time.monotonic() - back
    new = await tether.start_run(client, scripted_run("after", turn(shell="echo after"), turn("ok")),
                                 task_queue=worker.queue)
    new_result = await asyncio.wait_for(new.result(), timeout=60)
    new_done = time.monotonic() - back
    assert new_result.status == "completed", new_result
    in_flight_result = await asyncio.wait_for(tether.get_run(client, in_flight.id).result(), 60)
    in_flight_done = time.monotonic() - back
    assert in_flight_result.status == "completed", in_flight_result
    assert in_flight_result.output is not None and in_flight_result.output.split() == ["1", "2"]
    assert worker.alive, "the worker died during the outage and was not the one that recovered"
    print(f"\noutage {outage:.1f} s; after the server answered again: worker polling in "
          f"{polling_again:.1f} s, a new run completed in {new_done:.1f} s, "
          f"the run in flight completed in {in_flight_done:.1f} s")
    assert "Traceback" not in worker.log()


async def step_of(client: Client, workflow_id: str, step: int) -> bool:
    return (await tether.get_status(client, workflow_id)).step >= step
