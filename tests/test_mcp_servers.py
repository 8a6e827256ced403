"""MCP servers' tools in runs, end to end through a real worker and engine, against real
third-party servers: `mcp-server-time` (PyPI) as a stdio server inside the run's own sandbox,
and `@modelcontextprotocol/server-everything` (npm) over streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tether import client as tether
from tether.activities.mcp import McpActivities
from tether.contracts import RunStatus, SandboxSpec, ToolCall, names
from tether.contracts.tools import McpCallInput, McpListInput, McpServer
from tether.sandbox.image_build import build_image
from tether.tools.mcp_servers import McpEndpoints

from tests.endpoints import MCP_PORT, MCP_URL, MISSING_TOKEN_ENV
from tests.helpers import conversations, sandboxes, sandboxes_of, wait_for
from tests.llm.wire_servers import OPENAI_KEY, ProviderServer
from tests.sandbox.direct import direct_labels
from tests.scripts import scripted_run
from tests.workflows.histories import activities

ROOT = Path(__file__).resolve().parents[1]
EVERYTHING = ROOT / ".venv" / "npm" / "node_modules" / "@modelcontextprotocol" / "server-everything"
LOOPBACK_ONLY = ROOT / "tests" / "loopback_only.cjs"
TIME_SERVER = {"name": "time", "command": ["python3", "-m", "mcp_server_time", "--local-timezone", "UTC"],
               "where": "sandbox"}


def call(name: str, **arguments: object) -> dict:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


ANSWER = {"text": "{{last_output}}"}


@pytest.fixture(scope="module")
def time_image(docker_engine) -> Iterator[str]:
    """A sandbox image with the third-party time server installed (`tether image build`)."""
    tag = f"tether-test-mcp-time:{uuid.uuid4().hex[:8]}"
    build_image(docker_engine, tag, pip=["mcp-server-time"])
    yield tag
    docker_engine.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def everything_url() -> Iterator[str]:
    """server-everything over streamable HTTP, kept on loopback (see tests/loopback_only.cjs),
    on the port of the suite worker's MCP servers `every` and `every-token`."""
    node = shutil.which("node")
    if node is None or not EVERYTHING.exists():
        pytest.fail("server-everything is not installed: `make setup` installs it with npm")
    port = MCP_PORT
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": f"--require {LOOPBACK_ONLY}"}
    process = subprocess.Popen([node, str(EVERYTHING / "dist" / "index.js"), "streamableHttp"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert process.stderr is not None
        said = b""
        for line in process.stderr:
            said += line
            if b"listening" in line:
                break
        else:
            pytest.fail(f"server-everything did not start on port {port}: {said.decode(errors='replace')}")
        # Its log goes on to stderr: drained, so a full pipe never stalls the server.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield MCP_URL
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_a_stdio_server_runs_in_the_runs_own_sandbox_and_its_tool_answers(
    temporal_client: Client, worker: str, time_image: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "what time is it?", call("time__get_current_time", timezone="Europe/Paris"), ANSWER,
        tools=[], mcp_servers=[TIME_SERVER], sandbox={"image": time_image}), task_queue=worker)
    result = await handle.result()
    assert result.status == "completed"
    answer = json.loads(result.output or "")
    assert answer["timezone"] == "Europe/Paris" and "datetime" in answer
    summaries = [a.summary for a in await activities(temporal_client, handle)]
    assert summaries[:3] == ["acquire sandbox", "list MCP tools", "step 1 · scripted"]
    assert "step 1 · time.get_current_time" in summaries
    assert sandboxes_of(handle.id) == []


async def test_two_calls_to_one_stdio_server_in_one_turn_each_get_their_own_answer(
    temporal_client: Client, worker: str, time_image: str
):
    zones = ["Europe/Paris", "Asia/Tokyo", "America/Lima"]
    both = {"tool_calls": [{"name": "time__get_current_time", "arguments": {"timezone": zone}}
                           for zone in zones]}
    handle = await tether.start_run(temporal_client, scripted_run(
        "three clocks", both, ANSWER, tools=[], mcp_servers=[TIME_SERVER],
        sandbox={"image": time_image}), task_queue=worker)
    assert (await handle.result()).status == "completed"
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert [r.exit_code for r in step.tool_results] == [0, 0, 0], step.tool_results
    assert [json.loads(r.stdout)["timezone"] for r in step.tool_results] == zones


async def test_the_model_is_offered_the_servers_tools_by_prefixed_name_and_only_those_chosen(
    temporal_client: Client, worker: str, everything_url: str
):
    server = {"name": "every", "tools": ["echo", "get-sum"]}
    handle = await tether.start_run(temporal_client, scripted_run(
        "add", call("every__get-sum", a=2, b=40), ANSWER, tools=[], mcp_servers=[server]),
        task_queue=worker)
    result = await handle.result()
    assert result.output == "The sum of 2 and 40 is 42."
    ran = await activities(temporal_client, handle)
    [listed] = [a for a in ran if a.type == "mcp_list_tools"]
    assert sorted(listed.result["routes"]) == ["every__echo", "every__get-sum"]
    assert not [a for a in ran if a.type == "acquire_sandbox"]  # an HTTP server needs no sandbox


async def test_an_http_servers_headers_come_from_the_workers_environment(
    temporal_client: Client, worker: str, everything_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(MISSING_TOKEN_ENV, raising=False)
    handle = await tether.start_run(temporal_client, scripted_run(
        "echo", call("every-token__echo", message="x"), ANSWER, tools=[],
        mcp_servers=[{"name": "every-token"}]), task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "needs $MISSING_TOKEN_VAR set on the worker" in str(failure.value.cause)


async def test_an_mcp_tool_waits_for_approval_and_an_error_reaches_the_model(
    temporal_client: Client, worker: str, everything_url: str
):
    server = {"name": "every"}
    handle = await tether.start_run(temporal_client, scripted_run(
        "sum", call("every__get-sum", a="two", b=1), {"text": "could not"}, tools=[],
        mcp_servers=[server], approval={"tools": ["every__get-sum"]}), task_queue=worker)

    async def waiting() -> bool:
        status = await tether.get_status(temporal_client, handle.id)
        return [p.tool for p in status.pending_approvals] == ["every__get-sum"]

    await wait_for(waiting, what="the approval")
    await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
    assert (await handle.result()).status == "completed"
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert step.tool_results[0].exit_code == 1 and step.tool_results[0].stderr


async def test_a_lost_sandbox_starts_its_mcp_server_again_in_the_new_one(
    temporal_client: Client, worker: str, time_image: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "time twice", call("shell", command="sleep 3"),
        call("time__get_current_time", timezone="UTC"), ANSWER,
        tools=["shell"], mcp_servers=[TIME_SERVER], sandbox={"image": time_image}), task_queue=worker)
    async def sleeping() -> bool:  # listed, and in the first step's call: not before
        return (await handle.query(names.QUERY_STATUS, result_type=RunStatus)).state == "running_tools"

    await wait_for(sleeping, what="the first tool call")
    [first] = sandboxes_of(handle.id)
    await asyncio.to_thread(sandboxes().remove, first.id)  # the engine loses it mid-run
    result = await handle.result()
    assert result.status == "completed"
    assert json.loads(result.output or "")["timezone"] == "UTC"
    summaries = [a.summary for a in await activities(temporal_client, handle)]
    assert summaries.count("acquire sandbox") == 2


async def test_a_sandbox_its_engine_restarted_is_lost_to_an_mcp_call_too(
    temporal_client: Client, worker: str, time_image: str
):
    # The restart comes while the model thinks, after the server was listed in the sandbox:
    # the container runs again, empty, with RestartCount 0; only its start time tells.
    slow_call = {**call("time__get_current_time", timezone="UTC"), "delay_seconds": 6}
    handle = await tether.start_run(temporal_client, scripted_run(
        "time", slow_call, ANSWER, tools=[], mcp_servers=[TIME_SERVER],
        sandbox={"image": time_image}), task_queue=worker)

    async def thinking() -> bool:
        return (await handle.query(names.QUERY_STATUS, result_type=RunStatus)).step == 1

    await wait_for(thinking, what="the first model call")
    [first] = sandboxes_of(handle.id)
    await asyncio.to_thread(first.restart, timeout=1)
    result = await handle.result()
    assert result.status == "completed"
    assert json.loads(result.output or "")["timezone"] == "UTC"
    ran = await activities(temporal_client, handle)
    assert [a.summary for a in ran].count("acquire sandbox") == 2
    [lost, answered] = [a for a in ran if a.type == "mcp_call"]
    assert (lost.outcome, answered.outcome) == ("failed", "completed")
    assert lost.input["started_at"] and lost.input["container_id"] == first.id


async def test_a_sandbox_its_engine_restarted_before_the_listing_is_lost_to_it(time_image: str):
    # Made directly: in a run, nothing comes between the acquisition and the listing.
    container = await asyncio.to_thread(sandboxes().create, SandboxSpec(image=time_image),
                                        direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    try:
        started_at = await asyncio.to_thread(sandboxes().started_at, container.id)
        await asyncio.to_thread(container.restart, timeout=1)
        mcp = McpActivities(conversations=conversations(), sandboxes=sandboxes())
        listing = McpListInput(toolset=conversations().blobs.put(b"[]"),
                               servers=[McpServer.model_validate(TIME_SERVER)],
                               container_id=container.id, started_at=started_at)
        with pytest.raises(ApplicationError) as lost:
            await mcp.list_tools(listing)
    finally:
        await asyncio.to_thread(sandboxes().remove, container.id)
    assert lost.value.type == "SandboxGone" and "restarted by its engine" in lost.value.message


async def test_an_unknown_server_tool_name_in_the_input_fails_the_run_at_start(
    temporal_client: Client, worker: str, everything_url: str
):
    server = {"name": "every", "tools": ["no-such-tool"]}
    handle = await tether.start_run(temporal_client, scripted_run(
        "x", ANSWER, tools=[], mcp_servers=[server]), task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "has no tool 'no-such-tool'" in str(failure.value.cause)


async def test_an_mcp_url_with_header_variables_is_refused_and_no_request_reaches_it(
    temporal_client: Client, worker: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    listener = ProviderServer("openai", OPENAI_KEY)  # records any request it gets
    listener.start()
    try:
        server = {"name": "docs", "url": f"{listener.base_url}/mcp",
                  "headers_env": {"Authorization": "OPENAI_API_KEY"}}
        handle = await tether.start_run(temporal_client, scripted_run(
            "x", ANSWER, tools=[], mcp_servers=[server]), task_queue=worker)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    finally:
        listener.stop()
    refused = failure.value.cause
    assert isinstance(refused, ApplicationError) and refused.type == "InvalidInput"
    assert "TETHER_MCP_SERVERS" in refused.message
    assert listener.requests == []


async def test_a_server_named_that_the_worker_lacks_is_refused_listing_those_it_has(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "x", ANSWER, tools=[], mcp_servers=[{"name": "docs"}]), task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    refused = failure.value.cause
    assert isinstance(refused, ApplicationError) and refused.type == "InvalidInput"
    assert "'docs' is not configured" in refused.message and "every-token" in refused.message


async def test_an_mcp_call_on_a_worker_without_that_server_reaches_nothing(
    monkeypatch: pytest.MonkeyPatch
):
    # The check at the request itself: a run started by a worker configured otherwise
    # reaches this worker's MCP activity unchecked.
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    listener = ProviderServer("openai", OPENAI_KEY)
    listener.start()
    mcp = McpActivities(conversations=conversations(), sandboxes=None, servers=McpEndpoints())
    try:
        with pytest.raises(ApplicationError) as refused:
            await mcp.call(McpCallInput(
                workflow_id="run-x", step=1, index=0, call=ToolCall(id="c1", name="docs__search"),
                server=McpServer(name="docs", url=f"{listener.base_url}/mcp",
                                 headers_env={"Authorization": "OPENAI_API_KEY"}),
                remote_name="search"))
    finally:
        listener.stop()
    assert refused.value.type == "InvalidInput" and "TETHER_MCP_SERVERS" in refused.value.message
    assert listener.requests == []


def test_a_server_is_either_a_sandboxed_command_or_a_url():
    from pydantic import ValidationError
    from tether.contracts import AgentRunInput

    with pytest.raises(ValidationError, match="either a command or a url"):
        AgentRunInput.model_validate({"task": "x", "mcp_servers": [
            {"name": "a", "command": ["x"], "where": "sandbox", "url": "http://127.0.0.1:1/mcp"}]})
    with pytest.raises(ValidationError, match='drop "where"'):
        AgentRunInput.model_validate({"task": "x", "mcp_servers": [{"name": "a", "where": "sandbox"}]})
    with pytest.raises(ValidationError, match='add "where": "sandbox"'):
        AgentRunInput.model_validate({"task": "x", "mcp_servers": [{"name": "a", "command": ["x"]}]})
