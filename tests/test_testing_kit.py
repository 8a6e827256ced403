"""tether.testing, the kit users test their agents with: its own dev server and worker, a
scripted model, function tools given as functions; no Docker engine unless a run uses one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.plugin import SimplePlugin
from temporalio.worker import Plugin as WorkerPlugin
from temporalio.worker import Replayer, ReplayerConfig, Worker, WorkerConfig
from tether._testing.server import start_dev_server
from tether.contracts import AgentRunInput
from tether.embedded.temporal import ServerUnavailable
from tether.sandbox.engine import EngineUnavailable
from tether.sandbox.manager import LABEL_WORKER
from tether.testing import RunFailed, TetherTestEnvironment, call, scripted
from tether.tools import ToolLoadError

from tests.helpers import sandboxes
from tests.kit_greeting import Greeting

ORDERS = {"A-1": "shipped", "B-2": "lost"}


def order_status(order_id: str) -> dict[str, str]:
    """Look an order's status up by its id."""
    return {"order": order_id, "status": ORDERS[order_id]}


def asks_for(order_id: str) -> dict[str, object]:
    return {"task": f"Where is order {order_id}?", "tools": ["order_status"],
            "model": scripted(call("order_status", order_id=order_id), "{{last_output}}")}


def server_processes(port: int | None = None) -> list[int]:
    """The pids of `temporal server start-dev` processes (serving `port`, if given)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"start-dev" in command and (port is None or str(port).encode() in command):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
async def env():
    async with TetherTestEnvironment(tools=[order_status], docker=False) as env:
        yield env


async def test_a_scripted_run_calls_a_function_tool_and_answers_with_its_result(env: TetherTestEnvironment):
    result = await env.run(AgentRunInput.model_validate(asks_for("A-1")))
    assert (result.status, result.steps) == ("completed", 2)
    assert result.output == '{"order":"A-1","status":"shipped"}'


async def test_a_plain_dict_is_a_run_input(env: TetherTestEnvironment):
    result = await env.run(asks_for("B-2"))
    assert result.output == '{"order":"B-2","status":"lost"}'


async def test_an_invalid_input_raises_the_runs_own_one_line_reason(env: TetherTestEnvironment):
    with pytest.raises(RunFailed) as failed:
        await env.run({**asks_for("A-1"), "budget": {"max_steps": 0}})
    assert failed.value.kind == "InvalidInput"
    assert str(failed.value) == (
        "invalid AgentRun input: budget.max_steps: Input should be greater than or equal to 1")


async def test_a_tool_the_environment_lacks_fails_the_run_naming_the_tools_it_has(env: TetherTestEnvironment):
    with pytest.raises(RunFailed) as failed:
        await env.run({**asks_for("A-1"), "tools": ["refund"]})
    assert failed.value.kind == "UnknownTool"
    assert str(failed.value).startswith(
        "unknown tool(s) 'refund'; this worker has: python, shell, read_file, write_file, order_status")


async def test_a_test_steers_a_run_through_the_handle_start_returns(env: TetherTestEnvironment):
    run = await env.start({**asks_for("A-1"), "approval": {"tools": ["order_status"]}})
    waiting = await run.waiting_call()
    assert (waiting.tool, waiting.arguments) == ("order_status", {"order_id": "A-1"})
    assert await run.send_message("the customer is waiting") == "message queued for step 2"
    assert await run.approve(waiting.call_id) == f"call {waiting.call_id} (order_status) approved"
    result = await run.result()
    assert result.output == '{"order":"A-1","status":"shipped"}'


async def test_a_sandbox_tool_without_a_docker_engine_fails_the_run_saying_docker_is_needed(
    env: TetherTestEnvironment,
):
    with pytest.raises(RunFailed) as failed:
        await env.run({"task": "compute", "model": scripted(call("python", code="print(1)"), "done")})
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("the run's sandbox could not be created: NoDockerEngine: this "
                              "TetherTestEnvironment has no Docker engine (docker=False)")
    assert "start Docker or set DOCKER_HOST" in message


async def test_leaving_the_environment_stops_its_server_and_deletes_its_store():
    async with TetherTestEnvironment(tools=[order_status], docker=False) as env:
        await env.run(asks_for("A-1"))
        port = int(env.address.rpartition(":")[2])
        store = env.settings.store_path
        assert server_processes(port) and any(store.rglob("*"))
    assert server_processes(port) == []
    assert not env.settings.data_path.exists()


def test_a_server_that_will_not_start_says_so_with_the_end_of_its_log(tmp_path: Path):
    with socket.socket() as taken:  # bound, not listening: the server can't have the port
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(ServerUnavailable) as refused:
            start_dev_server(tmp_path, port=port)
    first, _, log = str(refused.value).partition("\n")
    assert first.startswith(f"the test environment's Temporal dev server did not start on 127.0.0.1:{port}")
    assert first.endswith("the end of its log:")
    assert "address already in use" in log
    assert server_processes(port) == []


async def test_a_test_environment_keeps_to_its_own_store_whatever_the_shell_says(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("TETHER_TOOLS", "tests.tools_plain")  # has a tool of another order_status's name
    monkeypatch.setenv("TETHER_STORE_DIR", str(Path(os.environ["TETHER_DATA_DIR"]) / "elsewhere"))
    async with TetherTestEnvironment(tools=[order_status], docker=False) as env:
        assert env.settings.tools == []
        assert env.settings.store_path.is_relative_to(env.settings.data_path)
        assert (await env.run(asks_for("A-1"))).status == "completed"


async def test_with_a_docker_engine_sandbox_tools_run(docker_engine: object):
    async with TetherTestEnvironment() as env:
        assert env.docker_engine
        result = await env.run({"task": "compute", "tools": ["python"],
                                "model": scripted(call("python", code="print(6 * 7)"), "{{last_output}}")})
    assert result.output == "42"


async def test_leaving_the_environment_removes_the_sandboxes_of_runs_still_going(docker_engine: object):
    async with TetherTestEnvironment() as env:
        run = await env.start({
            "task": "compute", "tools": ["shell", "python"], "approval": {"tools": ["python"]},
            "model": scripted(call("shell", command="true"), call("python", code="print(1)"), "never")})
        await run.waiting_call()  # the second call: the shell call ran in the sandbox it holds
        worker = env.settings.worker_id
        assert len(sandboxes().managed(**{LABEL_WORKER: worker})) == 1
    assert sandboxes().managed(**{LABEL_WORKER: worker}) == []


async def test_leaving_the_environment_cancels_the_runs_still_going():
    async with TetherTestEnvironment(tools=[order_status], docker=False) as env:
        run = await env.start({**asks_for("A-1"), "approval": {"tools": ["order_status"]}})
        await run.waiting_call()
        ending = asyncio.ensure_future(run.handle.result())
    with pytest.raises(WorkflowFailureError) as ended:
        await ending
    assert isinstance(ended.value.cause, CancelledError)


async def test_where_no_docker_engine_answers_a_sandbox_tool_fails_the_run_saying_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    async with TetherTestEnvironment(tools=[order_status]) as env:
        assert not env.docker_engine
        assert (await env.run(asks_for("A-1"))).status == "completed"
        with pytest.raises(RunFailed) as failed:
            await env.run({"task": "list", "model": scripted(call("shell", command="ls"), "done")})
    assert ("TetherTestEnvironment has no Docker engine (Error while fetching server API version"
            in str(failed.value))


def no_docstring(order_id: str) -> str:
    return order_id


async def test_a_function_that_cannot_be_a_tool_stops_the_environment_at_start_leaving_no_server():
    def servers_of_mine() -> list[int]:
        mine = []
        for pid in server_processes():
            with contextlib.suppress(OSError):  # one that ended meanwhile
                if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1] == str(os.getpid()):
                    mine.append(pid)
        return mine

    before = servers_of_mine()  # the module's environment's, among them
    with pytest.raises(ToolLoadError, match="no_docstring has no docstring"):
        async with TetherTestEnvironment(tools=[no_docstring], docker=False):
            pass
    assert servers_of_mine() == before


async def test_an_applications_plugin_serves_its_workflows_beside_tethers():
    plugin = SimplePlugin("app", workflows=[Greeting])
    async with TetherTestEnvironment(plugins=[plugin], docker=False) as env:
        greeted = await env.client.execute_workflow(
            Greeting.run, "tether", id="greeting", task_queue=env.task_queue)
        assert greeted == "hello tether"
        assert (await env.run(asks_for("A-1") | {"tools": []})).status == "completed"


class WorkerOnly(WorkerPlugin):
    """A plugin for workers alone: it can't be given to a client."""

    def __init__(self) -> None:
        self.queues: list[str] = []

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        self.queues.append(config["task_queue"])
        return config

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        await next(worker)

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        return config

    def run_replayer(self, replayer: Replayer, histories: Any,
                     next: Callable[..., Any]) -> Any:
        return next(replayer, histories)


async def test_a_plugin_for_workers_alone_is_given_to_the_worker():
    plugin = WorkerOnly()
    async with TetherTestEnvironment(plugins=[plugin], docker=False) as env:
        assert plugin.queues == [env.task_queue]


async def test_an_environment_that_requires_docker_refuses_to_start_where_none_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(EngineUnavailable, match=r"^no Docker engine answers"):
        async with TetherTestEnvironment(docker=True):
            pass
