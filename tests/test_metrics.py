"""A worker's Prometheus endpoint: Temporal's SDK metrics and tether's own, scraped over HTTP
from a worker process (`TETHER_METRICS_BIND`) that ran real runs on the dev server and the
Docker engine."""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid

from tether import client as tether
from tether.contracts import names
from tether.contracts.labels import MAX_MODEL_LABELS

from tests.endpoints import ENDPOINT_OF, wire_server
from tests.fuzz.wire_answers import answer
from tests.helpers import free_port, wait_for
from tests.llm.wire_servers import OPENAI_KEY
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(bind: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample the worker serves at /metrics on its bind address: name, labels, value."""
    with urllib.request.urlopen(f"http://{bind}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = []
    for line in text.splitlines():
        if match := SAMPLE.match(line):
            labels = dict(LABEL.findall(match["labels"] or ""))
            samples.append((match["name"], labels, float(match["value"])))
    return samples


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there are none)."""
    return sum(v for n, ls, v in samples
               if n == name and all(ls.get(k) == want for k, want in labels.items()))


async def test_a_worker_serves_temporal_and_tether_metrics_of_its_runs(
    temporal_client, docker_engine, tmp_path
):
    queue = f"metrics-{uuid.uuid4().hex[:6]}"
    bind = f"127.0.0.1:{free_port()}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue,
                           log_file=tmp_path / "worker.log",
                           env={"TETHER_METRICS_BIND": bind, "TETHER_TRACE_FILE": "off"})
    await worker.start()
    try:
        # A run that holds its sandbox while a python call waits for a person.
        held = await tether.start_run(
            temporal_client,
            scripted_run("count", turn(shell="echo hi"), turn(python="print(1)"), turn("done"),
                         approval={"tools": ["python"]}),
            task_queue=queue, workflow_id=f"metrics-held-{queue}")

        async def waiting() -> bool:
            return bool((await tether.get_status(temporal_client, held.id)).pending_approvals)

        await wait_for(waiting, timeout=60, what="the python call to wait for approval")
        await wait_for(lambda: value(scrape(bind), "tether_sandboxes_live", worker=queue) == 1,
                       timeout=20, what="one live sandbox")
        await held.execute_update(names.UPDATE_APPROVE, args=["2-0", True])
        assert (await held.result()).status == "completed"

        stopped = await tether.run(
            temporal_client, scripted_run("stop", turn(shell="echo 2"), turn("two"), budget={"max_steps": 1}),
            task_queue=queue, workflow_id=f"metrics-stopped-{queue}")
        assert stopped.status == "budget_exhausted"
        await wait_for(lambda: value(scrape(bind), "tether_sandboxes_live", worker=queue) == 0,
                       timeout=20, what="the sandbox counted as gone")
        samples = scrape(bind)
    finally:
        await worker.stop()

    mine = {"task_queue": queue}
    # Temporal's SDK metrics, through the same runtime.
    assert value(samples, "temporal_workflow_completed_total", **mine, workflow_type=names.AGENT_RUN) == 2
    assert value(samples, "temporal_activity_execution_latency_count", activity_type="model_call") >= 4
    # tether's: runs by final status, steps and tool calls, budget stops, sandboxes.
    assert value(samples, "tether_runs_total", **mine, status="completed") == 1
    assert value(samples, "tether_runs_total", **mine, status="budget_exhausted") == 1
    assert value(samples, "tether_budget_stops_total", **mine, limit="max_steps") == 1
    assert value(samples, "tether_steps_total", **mine, model="scripted") == 4  # 3 turns + 1
    assert value(samples, "tether_tool_calls_total", **mine, tool="shell", outcome="ok") == 2
    assert value(samples, "tether_tool_calls_total", **mine, tool="python", outcome="ok") == 1
    assert value(samples, "tether_sandboxes_created_total", **mine) == 2
    # Tokens and cost by model, and the GenAI client metrics, from the model activity.
    model = {"gen_ai_request_model": "scripted", "gen_ai_provider_name": "tether.scripted",
             "gen_ai_operation_name": "chat"}
    assert value(samples, "tether_tokens_total", model="scripted", type="input") > 0
    assert value(samples, "tether_tokens_total", model="scripted", type="output") > 0
    assert value(samples, "tether_model_cost_usd_count", model="scripted") == 4
    assert value(samples, "gen_ai_client_token_usage_count", **model, gen_ai_token_type="input") == 4
    assert value(samples, "gen_ai_client_token_usage_sum", **model, gen_ai_token_type="output") > 0
    assert value(samples, "gen_ai_client_operation_duration_seconds_count", **model) == 4
    assert 0 < value(samples, "gen_ai_client_operation_duration_seconds_sum", **model) < 30


async def test_a_bad_metrics_bind_stops_the_worker_naming_it(temporal_address, tmp_path):
    import asyncio
    import os
    import sys

    from tests.workflows.worker_process import ROOT

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "worker", "--metrics-bind", "nowhere", cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": temporal_address},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = (await asyncio.wait_for(process.communicate(), timeout=60))[0].decode()
    assert process.returncode != 0
    assert "--metrics-bind" in output and "HOST:PORT" in output


async def metrics_worker(temporal_client, tmp_path, **env: str) -> tuple[WorkerProcess, str, str]:
    """A worker process serving /metrics on a queue of its own: (worker, queue, bind)."""
    queue = f"metrics-{uuid.uuid4().hex[:6]}"
    bind = f"127.0.0.1:{free_port()}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue,
                           log_file=tmp_path / "worker.log",
                           env={"TETHER_METRICS_BIND": bind, "TETHER_TRACE_FILE": "off", **env})
    await worker.start()
    return worker, queue, bind


def label_values(samples: list[tuple[str, dict[str, str], float]], name: str, label: str,
                 **labels: str) -> set[str]:
    return {ls[label] for n, ls, _ in samples
            if n == name and label in ls and all(ls.get(k) == want for k, want in labels.items())}


async def test_a_tool_name_outside_the_runs_toolset_is_counted_as_unknown(
    temporal_client, docker_engine, tmp_path
):
    worker, queue, bind = await metrics_worker(temporal_client, tmp_path)
    try:
        chosen = [{"name": "shell", "arguments": {"command": "true"}},
                  {"name": "python", "arguments": {"code": "1"}},  # a tool, but not this run's
                  {"name": 'evil.example/"}\n{x', "arguments": {}}]
        result = await tether.run(
            temporal_client,
            scripted_run("names", {"tool_calls": chosen}, turn("done"), tools=["shell"]),
            task_queue=queue)
        assert result.status == "completed"
        samples = scrape(bind)
    finally:
        await worker.stop()
    assert label_values(samples, "tether_tool_calls_total", "tool", task_queue=queue) == {"shell", "unknown"}
    assert value(samples, "tether_tool_calls_total", task_queue=queue, tool="unknown", outcome="refused") == 2


async def test_model_names_are_bounded_in_length_characters_and_number(
    temporal_client, docker_engine, tmp_path
):
    server = wire_server("openai")
    server.reset(OPENAI_KEY)
    worker, queue, bind = await metrics_worker(temporal_client, tmp_path, OPENAI_API_KEY=OPENAI_KEY)
    hostile = "m" * 300 + '"}\n{evil.example'
    names = [hostile, *(f"model-{i}" for i in range(MAX_MODEL_LABELS + 8))]
    try:
        for _ in names:
            answer(server, text="ok")
        runs = [{"task": "hi", "model": {"provider": "openai", "name": name,
                                         "endpoint": ENDPOINT_OF["openai"]}} for name in names]
        first = await tether.run(temporal_client, runs[0], task_queue=queue)  # among the names kept
        rest = await asyncio.gather(*(tether.run(temporal_client, run, task_queue=queue) for run in runs[1:]))
        assert {r.status for r in [first, *rest]} == {"completed"}
        samples = scrape(bind)
    finally:
        await worker.stop()
        server.reset(OPENAI_KEY)
    for name, label in (("tether_tokens_total", "model"), ("tether_steps_total", "model"),
                        ("gen_ai_client_operation_duration_seconds_count", "gen_ai_request_model")):
        shown = label_values(samples, name, label)
        assert "openai:other" in shown, name
        assert len(shown) <= MAX_MODEL_LABELS + 2, name  # the first names, `scripted`, and the rest as one
        assert all(re.fullmatch(r"[\w.:/@+-]{1,64}", v, re.ASCII) for v in shown), shown
    assert value(samples, "tether_tokens_total", model="openai:other", type="input") > 0
    assert "m" * 64 in label_values(samples, "tether_tokens_total", "model")
