"""The long-running commands people start by hand: `python worker.py` and `tether dev`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

from tether.embedded.temporal import answers

from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


async def start(*argv: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


async def test_the_worker_process_stops_cleanly_on_sigterm(temporal_address: str, docker_engine):
    worker = await start(sys.executable, "worker.py", env={
        "TEMPORAL_ADDRESS": temporal_address,
        "TETHER_TASK_QUEUE": f"proc-{uuid.uuid4().hex[:6]}",
        "TETHER_WORKER_ID": f"proc-{uuid.uuid4().hex[:6]}",
    })
    assert worker.stdout is not None
    seen = b""
    while b"serving" not in seen:
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
        assert line, f"the worker exited before serving: {seen.decode()}"
        seen += line
    worker.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(worker.wait(), timeout=30)
    assert code == 0


async def test_tether_dev_runs_server_and_worker_and_ctrl_c_stops_both(tmp_path, docker_engine):
    port, ui_port = free_port(), free_port()
    dev = await start(sys.executable, "-m", "tether.cli", "dev", env={
        "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
        "TETHER_UI_PORT": str(ui_port),
        "TETHER_DATA_DIR": str(tmp_path),
        "TETHER_TASK_QUEUE": f"dev-{uuid.uuid4().hex[:6]}",
        "TETHER_WORKER_ID": f"dev-{uuid.uuid4().hex[:6]}",
    })
    await wait_for(lambda: answers(f"127.0.0.1:{port}"), timeout=90, what="the dev server")
    await wait_for(lambda: answers(f"127.0.0.1:{ui_port}"), timeout=30, what="the web UI")
    assert (tmp_path / "temporal.db").exists()
    await asyncio.sleep(2)  # let the worker come up before interrupting it
    dev.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(dev.wait(), timeout=60)
    output = (await dev.stdout.read()).decode() if dev.stdout else ""
    assert code == 0, output
    assert "stopped" in output
    assert not answers(f"127.0.0.1:{port}")


async def test_a_worker_traces_each_run_with_a_span_per_activity(
    temporal_client, temporal_address: str, docker_engine, tmp_path
):
    import json

    from tether import client as tether

    from tests.scripts import scripted_run, turn

    queue, traces = f"trace-{uuid.uuid4().hex[:6]}", tmp_path / "traces.jsonl"
    worker = await start(sys.executable, "worker.py", env={
        "TEMPORAL_ADDRESS": temporal_address, "TETHER_TASK_QUEUE": queue,
        "TETHER_WORKER_ID": queue, "TETHER_TRACE_FILE": str(traces),
    })
    try:
        result = await tether.run(
            temporal_client, scripted_run("trace", turn(shell="echo hi"), turn("done")),
            task_queue=queue, workflow_id=f"traced-{queue}")
        assert result.status == "completed"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), timeout=30) == 0
    spans = [json.loads(line) for line in traces.read_text().splitlines()]
    names = {s["name"] for s in spans if s["attributes"].get("temporalWorkflowID") == f"traced-{queue}"}
    # The call ran on the worker holding both the workflow and the sandbox: a local activity.
    assert {"RunWorkflow:AgentRun", "RunActivity:model_call", "RunActivity:tool_call_here",
            "RunActivity:acquire_sandbox"} <= names
