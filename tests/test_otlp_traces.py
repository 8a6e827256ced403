"""Traces over OTLP to a real receiver: Arize Phoenix (`make test` installs it into
`.venv/phoenix`, a venv of its own), started here on loopback ports. A worker process with
the standard `OTEL_EXPORTER_OTLP_ENDPOINT` runs a real run; the spans are read back from
Phoenix's REST API with their GenAI attributes. Contents stay out unless
`TETHER_TRACE_CONTENT=1`. Without the OTEL variables, the JSON-lines file gets the same spans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tether import client as tether

from tests.helpers import free_port, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import ROOT, WorkerProcess

PHOENIX = ROOT / ".venv" / "phoenix" / "bin" / "phoenix"
PHOENIX_START_S = 180  # its database migrations take a while on two cores


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory) -> Iterator[str]:
    """A Phoenix server on 127.0.0.1: its base URL (OTLP/HTTP at /v1/traces)."""
    assert PHOENIX.exists(), f"{PHOENIX} is missing: `make test` installs Arize Phoenix there"
    port, work = free_port(), tmp_path_factory.mktemp("phoenix")
    env = {**os.environ, "PHOENIX_HOST": "127.0.0.1", "PHOENIX_PORT": str(port),
           "PHOENIX_GRPC_PORT": str(free_port()), "PHOENIX_WORKING_DIR": str(work)}
    log = (work / "phoenix.log").open("wb")
    process = subprocess.Popen([str(PHOENIX), "serve"], env=env, stdout=log, stderr=log,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(PHOENIX_START_S * 2):
            if _up(url):
                break
            assert process.poll() is None, (work / "phoenix.log").read_text()[-3000:]
            subprocess.run(["sleep", "0.5"], check=True)
        else:
            pytest.fail(f"Phoenix did not answer in {PHOENIX_START_S} s: "
                        f"{(work / 'phoenix.log').read_text()[-3000:]}")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


async def run_traced(temporal_client, tmp_path: Path, env: dict[str, str], *turns: dict[str, Any],
                     task: str) -> str:
    """Runs one scripted run on a worker process of its own with `env`; stops the worker,
    which flushes its spans. The run's workflow id."""
    queue = f"otlp-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue,
                           log_file=tmp_path / f"{queue}.log", env=env)
    await worker.start()
    try:
        result = await tether.run(temporal_client, scripted_run(task, *turns),
                                  task_queue=queue, workflow_id=f"traced-{queue}")
        assert result.status == "completed"
    finally:
        await worker.stop()
    return f"traced-{queue}"


async def spans_in_phoenix(url: str, project: str, expected: dict[str, int]) -> list[dict]:
    """The project's spans as Phoenix stores them, once `expected` (name: how many) arrived."""
    found: list[dict] = []

    def read() -> bool:
        try:
            found[:] = _get(f"{url}/v1/projects/{project}/spans?limit=1000")["data"]
        except urllib.error.HTTPError as error:
            if error.code == 404:  # the project exists once its first span is ingested
                return False
            raise
        return all(len(named(found, name)) >= n for name, n in expected.items())

    await wait_for(read, timeout=60, every=0.5, what=f"spans {expected} in Phoenix")
    return found


def named(spans: list[dict], name: str) -> list[dict]:
    return [s for s in spans if s["name"] == name]


async def test_a_run_s_spans_reach_phoenix_in_the_genai_conventions(
    temporal_client, docker_engine, phoenix: str, tmp_path
):
    project = f"tether-{uuid.uuid4().hex[:6]}"
    secret_task = f"count the files {uuid.uuid4().hex}"
    workflow_id = await run_traced(
        temporal_client, tmp_path,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": phoenix, "TETHER_TRACE_FILE": "off",
         "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}"},
        turn(shell="echo hi"), turn(shell="exit 3"), turn("done"), task=secret_task)
    spans = await spans_in_phoenix(phoenix, project, {
        "invoke_agent tether": 1, "RunWorkflow:AgentRun": 1, "chat scripted": 3,
        "execute_tool shell": 2, "sandbox acquire": 1, "sandbox release": 1})

    [agent] = named(spans, "invoke_agent tether")
    assert agent["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert agent["attributes"]["gen_ai.conversation.id"] == workflow_id
    assert agent["attributes"]["gen_ai.provider.name"] == "tether.scripted"
    assert agent["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert agent["attributes"]["tether.status"] == "completed"
    trace_id = agent["context"]["trace_id"]
    # Temporal's own spans, the run's workflow span with a real duration.
    [workflow_span] = named(spans, "RunWorkflow:AgentRun")
    assert workflow_span["end_time"] > workflow_span["start_time"]
    assert agent["parent_id"] == workflow_span["context"]["span_id"]

    chats = named(spans, "chat scripted")
    assert len(chats) == 3
    for chat in chats:
        attributes = chat["attributes"]
        assert chat["context"]["trace_id"] == trace_id
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.provider.name"] == "tether.scripted"
        assert attributes["gen_ai.request.model"] == "scripted"
        assert attributes["gen_ai.response.model"] == "scripted"
        assert attributes["gen_ai.conversation.id"] == workflow_id
        assert attributes["gen_ai.usage.input_tokens"] > 0
        assert attributes["gen_ai.usage.output_tokens"] > 0
    assert sorted(c["attributes"]["gen_ai.response.finish_reasons"][0] for c in chats) == [
        "stop", "tool_calls", "tool_calls"]

    tools = sorted(named(spans, "execute_tool shell"), key=lambda s: s["attributes"]["tether.step"])
    assert len(tools) == 2
    for tool in tools:
        assert tool["context"]["trace_id"] == trace_id
        assert tool["attributes"]["gen_ai.operation.name"] == "execute_tool"
        assert tool["attributes"]["gen_ai.tool.name"] == "shell"
        assert tool["attributes"]["gen_ai.tool.call.id"]
    assert "error.type" not in tools[0]["attributes"]
    assert tools[1]["attributes"]["error.type"] == "tool_error"
    assert tools[1]["status_code"] == "ERROR"
    assert named(spans, "sandbox acquire") and named(spans, "sandbox release")

    # No contents without the opt-in: the task, the commands and their output stay out.
    everything = json.dumps(spans)
    assert secret_task not in everything
    assert "echo hi" not in everything
    assert not any("gen_ai.input.messages" in s["attributes"] for s in spans)


async def test_contents_enter_spans_only_when_opted_in(
    temporal_client, docker_engine, phoenix: str, tmp_path
):
    project = f"tether-{uuid.uuid4().hex[:6]}"
    task = f"say hello {uuid.uuid4().hex}"
    workflow_id = await run_traced(
        temporal_client, tmp_path,
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{phoenix}/v1/traces", "TETHER_TRACE_CONTENT": "1",
         "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={project}"},
        turn(shell="echo hello-from-the-sandbox"), turn("done"), task=task)
    spans = await spans_in_phoenix(phoenix, project, {
        "invoke_agent tether": 1, "chat scripted": 2, "execute_tool shell": 1})
    assert all(s["context"]["trace_id"] == named(spans, "invoke_agent tether")[0]["context"]["trace_id"]
               for s in named(spans, "chat scripted"))
    assert named(spans, "invoke_agent tether")[0]["attributes"]["gen_ai.conversation.id"] == workflow_id

    first = min(named(spans, "chat scripted"), key=lambda s: s["attributes"]["tether.step"])
    messages = json.loads(first["attributes"]["gen_ai.input.messages"])
    assert messages[0] == {"role": "user", "parts": [{"type": "text", "content": task}]}
    answer = json.loads(first["attributes"]["gen_ai.output.messages"])
    assert answer[0]["parts"][0]["name"] == "shell"
    [tool] = named(spans, "execute_tool shell")
    assert json.loads(tool["attributes"]["gen_ai.tool.call.arguments"]) == {
        "command": "echo hello-from-the-sandbox"}
    assert "hello-from-the-sandbox\n" in json.loads(tool["attributes"]["gen_ai.tool.call.result"])["stdout"]


async def test_without_otlp_the_spans_go_to_the_trace_file(temporal_client, docker_engine, tmp_path):
    traces = tmp_path / "traces.jsonl"
    workflow_id = await run_traced(temporal_client, tmp_path, {"TETHER_TRACE_FILE": str(traces)},
                                   turn(shell="echo hi"), turn("done"), task="file it")
    spans = [json.loads(line) for line in traces.read_text().splitlines()]
    mine = [s for s in spans if s["attributes"].get("gen_ai.conversation.id") == workflow_id]
    assert {"invoke_agent tether", "chat scripted", "execute_tool shell",
            "sandbox acquire"} <= {s["name"] for s in mine}
