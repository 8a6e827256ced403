"""A run with a brokered secret, end to end, under runc and gVisor: a real worker whose
environment holds the value and brokers its variable, a TLS server on loopback that answers
each header's SHA-256, and a tool that fetches from it through the proxy. The header arrives;
the value appears nowhere the run leaves anything (its history, the worker's data directory
with the store, the traces and the proxy's files, the worker's log and metrics), in any encoding the
canary test searches. A run naming a variable the worker does not broker is refused at its
start, naming it."""

from __future__ import annotations

import json
import secrets
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tether import client as tether

from tests.egress.servers import digest, http_server, make_ca
from tests.helpers import free_port, history_text
from tests.sandbox.attacks import RUNTIMES, require
from tests.scripts import scripted_run, turn
from tests.test_secret_canary import files_under, found
from tests.workflows.worker_process import WorkerProcess

HEADERS = """
import urllib.request
print(urllib.request.urlopen("{url}", timeout=20).read().decode())
"""
LOOK_AROUND = "env; ls -la /run/tether-egress; cat /proc/1/environ 2>&1 | tr '\\0' '\\n'; true"
"""What a curious tool would print: its environment, the mount, the executor's environment."""


def secret_network(port: int, env: str) -> dict[str, Any]:
    return {"allow": [f"127.0.0.2:{port}"], "secrets": [
        {"host": "127.0.0.2", "header": "Authorization", "env": env, "prefix": "Bearer "}]}


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_brokered_secret_authenticates_the_tools_request_and_appears_nowhere_else(
    temporal_client: Client, docker_engine: Any, tmp_path: Path, runtime: str
) -> None:
    canary = f"tc{secrets.token_hex(20)}"
    tls, ca = make_ca(tmp_path)
    queue = f"secrets-{uuid.uuid4().hex[:6]}"
    data_dir, log_file = tmp_path / "data", tmp_path / "worker.log"
    metrics = f"127.0.0.1:{free_port()}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue, log_file=log_file, env={
        "TETHER_DATA_DIR": str(data_dir), "TETHER_BROKERED_ENV": "TEST_API_TOKEN",
        "TEST_API_TOKEN": canary, "TETHER_EGRESS_CA_FILE": str(ca), "TETHER_METRICS_BIND": metrics})
    await worker.start()
    try:
        with http_server(tls, host="127.0.0.2") as port:
            handle = await tether.start_run(temporal_client, scripted_run(
                "fetch", turn(python=HEADERS.format(url=f"https://127.0.0.2:{port}/headers"),
                              shell=LOOK_AROUND), turn("done"),
                sandbox={"network": secret_network(port, "TEST_API_TOKEN"), "runtime": require(runtime)}),
                task_queue=queue)
            result = await handle.result()
        first, _ = await tether.get_transcript(temporal_client, handle.id)  # its worker answers
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as scraped:
            exported = scraped.read()
    finally:
        await worker.stop()
    assert result.status == "completed", result
    fetched, looked = first.tool_results
    assert json.loads(fetched.stdout)["authorization"] == digest(f"Bearer {canary}")
    assert "SSL_CERT_FILE=/run/tether-egress/ca-bundle.pem" in looked.stdout  # the control: it looked
    places: dict[str, bytes] = {"history": (await history_text(handle)).encode(),
                                "worker log": log_file.read_bytes(), "metrics": exported}
    places |= {str(path): data for path, data in files_under(data_dir).items()}
    assert b"tether_egress_requests_total" in exported
    assert {"proxy.log", "traces.jsonl"} <= {Path(path).name for path in places}, sorted(places)
    told = b"carry a credential the runtime's proxy adds (127.0.0.2: Authorization)"
    assert any(told in data for path, data in places.items() if "/store/" in path)  # the model's note
    assert {name: found(data, canary) for name, data in places.items() if found(data, canary)} == {}


async def test_a_run_naming_a_variable_the_worker_does_not_broker_is_refused_at_its_start(
    temporal_client: Client, worker: str
) -> None:
    handle = await tether.start_run(temporal_client, scripted_run(
        "fetch", turn(shell="echo never"), turn("done"),
        sandbox={"network": secret_network(443, "BILLING_DB_PASSWORD")}), task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    refused = failure.value.cause
    assert isinstance(refused, ApplicationError) and refused.type == "InvalidInput"
    assert refused.message == (
        "sandbox.network.secrets names BILLING_DB_PASSWORD, which this worker does not broker:"
        " list it in the worker's TETHER_BROKERED_ENV (comma-separated), or drop the secret")
    assert all(step.tool_results == [] for step in await tether.get_transcript(temporal_client, handle.id))
