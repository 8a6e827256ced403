"""A sandbox whose run has a brokered secret: its tools reach the secret host with the
header added, trusting the run's CA through the standard variables, and the value is
nowhere in the sandbox. Under runc and gVisor, with a real TLS server on the host's loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tether.contracts import SandboxSpec
from tether.egress.proxy import EgressProxy

from tests.egress.conftest import EGRESS_PYTHON
from tests.egress.servers import digest, http_server, make_ca
from tests.helpers import sandboxes
from tests.sandbox.attacks import RUNTIMES, require
from tests.sandbox.direct import call, direct_labels

CANARY = "tether-canary-b41d07e2c9"
BUNDLE = "/run/tether-egress/ca-bundle.pem"
HOST = "127.0.0.2"
HEADERS = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())
"""
"""urllib with nothing but what the sandbox gives it: the proxy variables and SSL_CERT_FILE."""


class SecretSandboxes:
    """Sandboxes whose runs may reach `port` on HOST, a TLS server the test's CA signed,
    with the worker's TEST_TOKEN added as `Authorization: Bearer ...`."""

    def __init__(self, egress: EgressProxy, port: int) -> None:
        self.egress, self.port = egress, port
        self.made: list[str] = []

    async def make(self, runtime: str) -> str:
        name = f"tether-test-{uuid.uuid4().hex[:12]}"
        spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=16, runtime=require(runtime),
                           network={"allow": [f"{HOST}:{self.port}"], "secrets": [
                               {"host": HOST, "header": "Authorization", "env": "TEST_TOKEN",
                                "prefix": "Bearer "}]})
        assert spec.network != "none"
        directory = await self.egress.open(name, spec.network)
        container = await asyncio.to_thread(sandboxes().create, spec, direct_labels(), name=name,
                                            egress_dir=directory)
        self.made.append(str(container.id))
        self.egress.made(name, str(container.id))
        await call(str(container.id), f"cat > /workspace/headers.py <<'EOF'\n{HEADERS}\nEOF")
        return str(container.id)


@pytest.fixture
async def secret_sandboxes(tmp_path: Path, docker_engine: object) -> AsyncIterator[SecretSandboxes]:
    tls, ca = make_ca(tmp_path)
    egress = EgressProxy(python=str(EGRESS_PYTHON), brokered=["TEST_TOKEN"], ca_file=ca,
                         environ={"TEST_TOKEN": CANARY})
    with http_server(tls, host=HOST) as port:
        made = SecretSandboxes(egress, port)
        try:
            yield made
        finally:
            for container_id in made.made:
                await asyncio.to_thread(sandboxes().remove, container_id)
            await egress.stop()


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_tool_reaches_the_secret_host_with_the_header_added_and_its_ca_trusted(
        secret_sandboxes: SecretSandboxes, runtime: str) -> None:
    sandbox = await secret_sandboxes.make(runtime)
    result = await call(sandbox, f"python3 /workspace/headers.py https://{HOST}:{secret_sandboxes.port}/headers",
                        timeout=30)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["authorization"] == digest(f"Bearer {CANARY}")


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_the_trust_variables_point_at_the_bundle_which_holds_no_key(
        secret_sandboxes: SecretSandboxes, runtime: str) -> None:
    sandbox = await secret_sandboxes.make(runtime)
    result = await call(sandbox, "env | grep -E '_(CERT|CA|CAINFO|CERTS|BUNDLE)[A-Z_]*=' | sort;"
                                 f" grep -c 'BEGIN CERTIFICATE' {BUNDLE}; grep -c 'PRIVATE KEY' {BUNDLE}")
    assert result.stdout.split() == [
        f"CURL_CA_BUNDLE={BUNDLE}", f"GIT_SSL_CAINFO={BUNDLE}", f"NODE_EXTRA_CA_CERTS={BUNDLE}",
        f"PIP_CERT={BUNDLE}", f"REQUESTS_CA_BUNDLE={BUNDLE}", f"SSL_CERT_FILE={BUNDLE}",
        result.stdout.split()[6], "0"], result.stderr
    assert int(result.stdout.split()[6]) >= 2  # the test's CA and the run's, at least


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_the_value_is_in_no_environment_command_line_or_file_of_the_sandbox(
        secret_sandboxes: SecretSandboxes, runtime: str) -> None:
    sandbox = await secret_sandboxes.make(runtime)
    used = await call(sandbox, f"python3 /workspace/headers.py https://{HOST}:{secret_sandboxes.port}/headers"
                               " > /workspace/answer.json", timeout=30)
    assert used.exit_code == 0, used.stderr
    assert await holding_the_canary(sandbox) == []
    environment = sandboxes().engine.containers.get(sandbox).attrs["Config"]["Env"]
    assert not any(CANARY in variable for variable in environment)
    # The search finds it where it is.
    await asyncio.to_thread(subprocess.run, ["docker", "exec", "-i", sandbox, "sh", "-c",
                                             "cat > /tmp/planted"], input=CANARY, text=True, timeout=60)
    assert await holding_the_canary(sandbox) == ["/tmp/planted"]


async def holding_the_canary(sandbox: str) -> list[str]:
    """As root: every process's environment and command line, and every writable place. The
    pattern comes on stdin (on a command line, grep would find itself)."""
    places = "/proc/[0-9]*/environ /proc/[0-9]*/cmdline /workspace /tmp /dev/shm /run/tether-egress"
    found = await asyncio.to_thread(subprocess.run, [
        "docker", "exec", "-i", "-u", "0", sandbox, "sh", "-c", f"grep -rlsF -f /dev/stdin {places}"],
        input=CANARY, capture_output=True, text=True, timeout=60)
    return [path for path in found.stdout.split() if "/proc/self/" not in path]
