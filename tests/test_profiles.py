"""Connecting as every Temporal tool does: a profile of a TOML config file names the server,
a namespace that is not `default` and an API key; `tether --profile` runs a worker and a run
there. The key is never printed or logged, and a bad profile is a one-line error.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.service import RPCError
from tether import client as tether_client
from tether.connection import ConnectionConfigError, connect_config, resolved
from tether.embedded import temporal as embedded
from tether.settings import DEFAULT_ADDRESS, TetherSettings

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
API_KEY = f"canary-api-key-{uuid.uuid4().hex}"


def profile_env(config_file: Path, **more: str) -> dict[str, str]:
    """The environment of a process configured by the file alone: the suite's own
    TEMPORAL_ADDRESS would override the profile's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    return {**env, "TEMPORAL_CONFIG_FILE": str(config_file), **more}


def tether_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
async def namespace(temporal_address: str) -> str:
    name = f"tether-profile-{uuid.uuid4().hex[:6]}"
    subprocess.run([embedded.temporal_binary(), "operator", "namespace", "create", "--namespace", name,
                    "--address", temporal_address], check=True, capture_output=True, timeout=60)
    client = await tether_client.connect(TetherSettings(), address=temporal_address, namespace=name)

    async def usable() -> bool:  # the server's namespace cache takes a moment to see it
        try:
            await client.count_workflows()
            return True
        except RPCError:
            return False

    await wait_for(usable, timeout=60, every=0.5, what=f"namespace {name}")
    return name


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, temporal_address: str, namespace: str) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "temporal.toml"
    # `staging` is a Cloud-like profile against the dev server: an API key (sent as a bearer
    # token, which the dev server ignores) with TLS off, since the dev server has none.
    path.write_text(f"""
[profile.staging]
address = "{temporal_address}"
namespace = "{namespace}"
api_key = "{API_KEY}"

[profile.staging.tls]
disabled = true

[profile.cloud]
address = "{temporal_address}"
namespace = "{namespace}"
api_key = "{API_KEY}"
""")
    return path


def test_nothing_configured_is_the_embedded_server(monkeypatch, tmp_path):
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_PROFILE", "TEMPORAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "none.toml"))
    settings = resolved(TetherSettings())
    assert (settings.temporal_address, settings.namespace) == (DEFAULT_ADDRESS, "default")
    assert not settings.address_configured  # so tether dev and tether demo start the dev server
    assert connect_config(settings) == {"target_host": DEFAULT_ADDRESS, "namespace": "default"}


def test_a_profile_fills_what_tether_was_not_told_and_yields_to_what_it_was(
        monkeypatch, config_file, namespace, temporal_address):
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    config = connect_config(TetherSettings())
    assert config["target_host"] == temporal_address and config["namespace"] == namespace
    assert config["api_key"] == API_KEY and config["tls"] is True  # an API key turns TLS on
    chosen = resolved(TetherSettings())
    assert chosen.address_configured and chosen.namespace == namespace
    assert API_KEY not in repr(chosen)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "elsewhere")
    assert connect_config(TetherSettings())["namespace"] == "elsewhere"
    monkeypatch.setenv("TEMPORAL_PROFILE", "nope")
    with pytest.raises(ConnectionConfigError, match=f"profile 'nope' from the config file {config_file}"):
        connect_config(TetherSettings())


async def test_a_worker_and_a_run_through_a_profile_use_its_namespace(
        temporal_client, temporal_address, namespace, config_file, docker_engine, tmp_path):
    queue = f"profile-{uuid.uuid4().hex[:6]}"
    env = profile_env(config_file, TETHER_TASK_QUEUE=queue, TETHER_WORKER_ID=queue)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "tether.cli", "--profile", "staging", "worker"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    in_namespace = await tether_client.connect(address=temporal_address, namespace=namespace)
    try:
        await wait_for(lambda: "serving" in log.read_text() or worker.poll() is not None,
                       timeout=90, every=0.3, what="the profile's worker")
        assert worker.poll() is None, log.read_text()

        script = tmp_path / "script.json"
        script.write_text(json.dumps({"turns": [{"tool_calls": [
            {"name": "shell", "arguments": {"command": "echo $((20+22))"}}]},
            {"text": "got {{last_output}}"}]}))
        ran = await asyncio.to_thread(
            tether_cli, "--profile", "staging", "run", "add numbers", "--model", f"scripted:{script}",
            "--wait", "--json", env=env)
        assert ran.returncode == 0, ran.stderr
        result = json.loads(ran.stdout)
        assert result["status"] == "completed" and result["output"].strip() == "got 42"
        assert f"/namespaces/{namespace}/" in result["ui"]
        # The run is in the profile's namespace, not the suite's.
        described = await in_namespace.get_workflow_handle(result["workflow_id"]).describe()
        assert described.task_queue == queue
        with pytest.raises(RPCError, match="not found"):
            await temporal_client.get_workflow_handle(result["workflow_id"]).describe()
        status = await asyncio.to_thread(
            tether_cli, "status", result["workflow_id"], "--json",
            env={**env, "TEMPORAL_PROFILE": "staging"})
        assert status.returncode == 0 and json.loads(status.stdout)["state"] == "completed"
    finally:
        worker.send_signal(2)
        await asyncio.to_thread(worker.wait, 30)
    for output in (ran.stdout, ran.stderr, status.stdout, status.stderr, log.read_text()):
        assert API_KEY not in output


def test_an_api_key_is_not_printed_when_the_connection_fails(config_file):
    # `cloud` has the key and so TLS, which the dev server doesn't speak.
    failed = tether_cli("--profile", "cloud", "status", "any-run", env=profile_env(config_file))
    assert failed.returncode == 2
    assert "error:" in failed.stderr and "Traceback" not in failed.stderr
    assert API_KEY not in failed.stdout + failed.stderr
    with_env = tether_cli("status", "any-run", env=profile_env(
        config_file, TEMPORAL_PROFILE="cloud", TEMPORAL_API_KEY=API_KEY + "-env"))
    assert with_env.returncode == 2 and API_KEY not in with_env.stdout + with_env.stderr


def test_a_profile_the_file_lacks_is_a_clear_error(config_file):
    missing = tether_cli("--profile", "prod", "status", "any-run", env=profile_env(config_file))
    assert missing.returncode == 2
    assert f"cannot load profile 'prod' from the config file {config_file}" in missing.stderr
    assert "Traceback" not in missing.stderr
