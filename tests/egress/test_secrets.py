"""Secrets brokered at the proxy: a run's secret host gets its header from the worker's
variable, over TLS the proxy terminates with the run's own CA, and nothing else does. The
servers answer a header's SHA-256, never its value, so a value that reaches the tool is one
the proxy leaked."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tether.contracts.network import NetworkPolicy
from tether.egress.proxy import CA_BUNDLE_NAME, SOCKET_NAME, EgressProxy, SecretRefused
from tether.sandbox.image.executor.egress import relay_egress

from tests.egress.conftest import EGRESS_PYTHON
from tests.egress.servers import digest, http_server, make_ca
from tests.egress.test_proxy import fetch, settled

CANARY = "tether-canary-7f3a9c1e5b"
SECRET = {"host": "127.0.0.2", "header": "Authorization", "env": "TEST_TOKEN", "prefix": "Bearer "}
Opened = tuple[str, Path]
"""The run's proxy as its tools see it (a relay to its socket), and its trust bundle."""


@dataclass
class Brokering:
    egress: EgressProxy
    """A proxy whose worker brokers TEST_TOKEN (its value the canary), trusting `server_ca`."""
    tls: ssl.SSLContext
    """The test servers' context, their certificate signed by `server_ca`."""
    server_ca: Path


@pytest.fixture
async def brokering(tmp_path: Path) -> AsyncIterator[Brokering]:
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    tls, ca = make_ca(tls_dir)
    proxy = EgressProxy(python=str(EGRESS_PYTHON), directory=tmp_path / "egress",
                        brokered=["TEST_TOKEN"], ca_file=ca, environ={"TEST_TOKEN": CANARY})
    yield Brokering(proxy, tls, ca)
    await proxy.stop()


async def open_run(egress: EgressProxy, name: str, allow: list[str],
                   secrets: list[dict[str, str]]) -> Opened:
    directory = await egress.open(name, NetworkPolicy(allow=allow, secrets=secrets))
    port = relay_egress(os.path.join(directory, SOCKET_NAME), 0)
    return f"http://127.0.0.1:{port}", Path(directory) / CA_BUNDLE_NAME


def headers(answer: tuple[int, bytes]) -> dict[str, str]:
    status, body = answer
    assert status == 200, body
    return dict(json.loads(body))


async def through(proxy: str, url: str, ca: Path) -> tuple[int, bytes]:
    return await asyncio.to_thread(fetch, proxy, url, ca=ca)


async def test_a_secret_hosts_https_requests_carry_the_header_the_worker_holds(
        brokering: Brokering) -> None:
    egress = brokering.egress
    with http_server(brokering.tls, host="127.0.0.2") as port:
        proxy, bundle = await open_run(egress, "run-s1", [f"127.0.0.2:{port}"], [SECRET])
        seen = headers(await through(proxy, f"https://127.0.0.2:{port}/headers", bundle))
    assert seen["authorization"] == digest(f"Bearer {CANARY}")


async def test_a_tunnel_to_a_host_without_a_secret_is_not_intercepted(
        brokering: Brokering) -> None:
    egress, tls, server_ca = brokering.egress, brokering.tls, brokering.server_ca
    with http_server(tls, host="127.0.0.2") as secret_port, http_server(tls, host="127.0.0.3") as port:
        proxy, _ = await open_run(egress, "run-s2", [f"127.0.0.2:{secret_port}", f"127.0.0.3:{port}"],
                                  [SECRET])
        # Trusting the server's own CA only: a certificate the proxy made would fail it.
        seen = headers(await through(proxy, f"https://127.0.0.3:{port}/headers", server_ca))
    assert "authorization" not in seen


async def test_a_redirect_followed_by_curl_to_another_allowed_host_carries_no_header(
        brokering: Brokering) -> None:
    egress, tls = brokering.egress, brokering.tls
    with http_server(tls, host="127.0.0.2") as secret_port, http_server(tls, host="127.0.0.3") as port:
        proxy, bundle = await open_run(egress, "run-s3", [f"127.0.0.2:{secret_port}", f"127.0.0.3:{port}"],
                                       [SECRET])
        elsewhere = f"https://127.0.0.3:{port}/headers"
        curl = await asyncio.to_thread(subprocess.run, [
            "curl", "-sS", "-L", "--proxy", proxy, "--cacert", str(bundle),
            f"https://127.0.0.2:{secret_port}/redirect?to={elsewhere}"],
            capture_output=True, text=True, timeout=60)
    assert curl.returncode == 0, curl.stderr
    seen = json.loads(curl.stdout)
    assert "authorization" not in seen and seen["host"] == digest(f"127.0.0.3:{port}")


async def test_an_upstream_whose_certificate_no_trusted_ca_signed_is_refused_with_a_502(
        brokering: Brokering, tmp_path: Path) -> None:
    egress = brokering.egress
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    with http_server(make_ca(stranger)[0], host="127.0.0.2") as port:
        proxy, bundle = await open_run(egress, "run-s4", [f"127.0.0.2:{port}"], [SECRET])
        status, body = await through(proxy, f"https://127.0.0.2:{port}/headers", bundle)
        [decision] = await settled(egress, "run-s4", 1)
    assert status == 502, body
    assert b"127.0.0.2:%d could not be verified (Certificate verify failed" % port in body
    assert decision.reason.startswith("Certificate verify failed")  # and so in the worker's log


async def test_a_run_naming_a_variable_the_worker_does_not_broker_is_refused_naming_it(
        brokering: Brokering) -> None:
    egress = brokering.egress
    other = dict(SECRET, env="GITHUB_TOKEN")
    with pytest.raises(SecretRefused, match="names GITHUB_TOKEN, which this worker does not broker:"
                       " list it in the worker's TETHER_BROKERED_ENV"):
        await egress.open("run-s5", NetworkPolicy(allow=["127.0.0.2"], secrets=[other]))


async def test_a_brokered_variable_the_worker_has_no_value_for_is_refused_naming_it(
        tmp_path: Path) -> None:
    egress = EgressProxy(python=str(EGRESS_PYTHON), brokered=["TEST_TOKEN"], environ={})
    with pytest.raises(SecretRefused, match="TETHER_BROKERED_ENV lists TEST_TOKEN, but the worker's"
                       " environment has no value for it"):
        await egress.open("run-s6", NetworkPolicy(allow=["127.0.0.2"], secrets=[SECRET]))
    await egress.stop()


async def test_the_value_is_in_no_argument_file_or_decision_of_the_proxy(
        brokering: Brokering, tmp_path: Path) -> None:
    egress = brokering.egress
    with http_server(brokering.tls, host="127.0.0.2") as port:
        proxy, bundle = await open_run(egress, "run-s7", [f"127.0.0.2:{port}"], [SECRET])
        await through(proxy, f"https://127.0.0.2:{port}/headers", bundle)
        decisions = await settled(egress, "run-s7", 1)
    assert decisions and all(CANARY not in repr(d) for d in decisions)
    assert egress._process is not None
    pid = egress._process.pid
    for place in ("cmdline", "environ"):
        assert CANARY.encode() not in Path(f"/proc/{pid}/{place}").read_bytes(), place
    for path in (tmp_path / "egress").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    assert b"PRIVATE KEY" not in bundle.read_bytes()


async def test_a_secret_host_by_name_is_verified_for_that_name_and_gets_the_header(
        brokering: Brokering) -> None:
    egress = brokering.egress
    with http_server(brokering.tls) as port:
        # localhost resolves to loopback: its address must be listed too.
        proxy, bundle = await open_run(egress, "run-s8", [f"localhost:{port}", f"127.0.0.1:{port}"],
                                       [dict(SECRET, host="localhost")])
        seen = headers(await through(proxy, f"https://localhost:{port}/headers", bundle))
    assert seen["authorization"] == digest(f"Bearer {CANARY}")


async def test_a_plain_http_request_to_a_secret_host_goes_without_the_header(
        brokering: Brokering) -> None:
    with http_server(host="127.0.0.2") as port:
        proxy, bundle = await open_run(brokering.egress, "run-s9", [f"127.0.0.2:{port}"], [SECRET])
        seen = headers(await through(proxy, f"http://127.0.0.2:{port}/headers", bundle))
    assert "authorization" not in seen


async def test_a_worker_that_takes_a_sandbox_over_gives_it_a_new_ca_in_the_same_bundle(
        brokering: Brokering, tmp_path: Path) -> None:
    with http_server(brokering.tls, host="127.0.0.2") as port:
        _, bundle = await open_run(brokering.egress, "run-s10", [f"127.0.0.2:{port}"], [SECRET])
        before = bundle.read_bytes()
        await brokering.egress.stop()  # the worker died, its proxy with it
        successor = EgressProxy(python=str(EGRESS_PYTHON), directory=tmp_path / "egress",
                                brokered=["TEST_TOKEN"], ca_file=brokering.server_ca,
                                environ={"TEST_TOKEN": CANARY})
        try:
            proxy, again = await open_run(successor, "run-s10", [f"127.0.0.2:{port}"], [SECRET])
            assert again == bundle and again.read_bytes() != before
            seen = headers(await through(proxy, f"https://127.0.0.2:{port}/headers", bundle))
        finally:
            await successor.stop()
    assert seen["authorization"] == digest(f"Bearer {CANARY}")


def request_naming(proxy: str, host: str, port: int, named: str, ca: Path) -> tuple[int, bytes]:
    """A request through a tunnel to host:port whose Host header names `named`."""
    relay_host, relay_port = proxy.removeprefix("http://").split(":")
    connection = http.client.HTTPSConnection(relay_host, int(relay_port), timeout=30,
                                             context=ssl.create_default_context(cafile=ca))
    connection.set_tunnel(host, port)
    try:
        connection.request("GET", "/headers", headers={"Host": named})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


async def test_a_request_in_a_secret_hosts_tunnel_naming_another_host_is_refused(
        brokering: Brokering) -> None:
    # On shared hosting the Host header picks the site: the secret would reach another tenant.
    with http_server(brokering.tls, host="127.0.0.2") as port:
        proxy, bundle = await open_run(brokering.egress, "run-s11", [f"127.0.0.2:{port}"], [SECRET])
        status, body = await asyncio.to_thread(request_naming, proxy, "127.0.0.2", port,
                                               "evil.example", bundle)
        assert status == 403, body
        assert body.startswith(b"tether egress: a request in the tunnel to 127.0.0.2:%d names host"
                               b" evil.example" % port)
        status, body = await asyncio.to_thread(request_naming, proxy, "127.0.0.2", port,
                                               f"127.0.0.2:{port}", bundle)
    assert status == 200 and json.loads(body)["authorization"] == digest(f"Bearer {CANARY}")


@contextlib.contextmanager
def tunnel_to(proxy: str, destination: str) -> Iterator[socket.socket]:
    """A connection to the run's proxy whose CONNECT to `destination` was answered 200."""
    relay_host, relay_port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((relay_host, int(relay_port)), timeout=30) as connection:
        connection.sendall(f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n\r\n".encode())
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        yield connection


def read_all(connection: socket.socket) -> bytes:
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


def request_with_sni(proxy: str, host: str, port: int, sni: str, named: str, ca: Path) -> bytes:
    """Through a tunnel to host:port, TLS whose ClientHello names `sni`, then a request whose
    Host header names `named`; the whole answer."""
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False  # whatever name the proxy's certificate has: not the point here
    with tunnel_to(proxy, f"{host}:{port}") as raw, context.wrap_socket(raw, server_hostname=sni) as tls:
        tls.sendall(f"GET /headers HTTP/1.1\r\nHost: {named}\r\nConnection: close\r\n\r\n".encode())
        return read_all(tls)


async def test_a_tls_name_other_than_the_tunnels_sends_the_secret_nowhere_else(
        brokering: Brokering) -> None:
    # The tool's ClientHello names evil.example inside a tunnel allowed for the secret host:
    # the proxy still connects to the address the tunnel was checked for, verifies it for the
    # tunnel's host, and adds the secret only to requests that name that host.
    with http_server(brokering.tls, host="127.0.0.2") as port:
        proxy, bundle = await open_run(brokering.egress, "run-s14", [f"127.0.0.2:{port}"], [SECRET])
        refused = await asyncio.to_thread(request_with_sni, proxy, "127.0.0.2", port, "evil.example",
                                          "evil.example", bundle)
        named = await asyncio.to_thread(request_with_sni, proxy, "127.0.0.2", port, "evil.example",
                                        f"127.0.0.2:{port}", bundle)
    status, _, body = refused.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 403") and b"names host evil.example" in body, refused
    assert CANARY.encode() not in refused
    status, _, body = named.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), named
    assert json.loads(body)["authorization"] == digest(f"Bearer {CANARY}")


def through_tunnel(proxy: str, destination: str, payload: bytes) -> bytes:
    """CONNECT, then `payload` inside the tunnel as it is; the whole answer."""
    with tunnel_to(proxy, destination) as connection:
        connection.sendall(payload)
        return read_all(connection)


async def test_what_is_not_tls_in_a_secret_hosts_tunnel_passes_as_it_is_without_the_header(
        brokering: Brokering) -> None:
    with http_server(host="127.0.0.2") as port:
        proxy, _ = await open_run(brokering.egress, "run-s12", [f"127.0.0.2:{port}"], [SECRET])
        answer = await asyncio.to_thread(through_tunnel, proxy, f"127.0.0.2:{port}",
                                         b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200") and "authorization" not in json.loads(body)


async def test_tls_spoken_to_the_proxy_itself_gets_no_certificate_of_it(brokering: Brokering) -> None:
    with http_server(brokering.tls, host="127.0.0.2") as port:
        proxy, bundle = await open_run(brokering.egress, "run-s13", [f"127.0.0.2:{port}"], [SECRET])
    relay_host, relay_port = proxy.removeprefix("http://").split(":")
    context = ssl.create_default_context(cafile=bundle)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # whatever certificate it were, the handshake must fail
    with (socket.create_connection((relay_host, int(relay_port)), timeout=30) as raw,
          pytest.raises((ssl.SSLError, OSError))):
        await asyncio.to_thread(context.wrap_socket, raw, server_hostname="127.0.0.2")
