"""The egress proxy on its own: a run's socket, the executor's relay in front of it (as in a
sandbox), and real servers on 127.0.0.1 behind it. What goes through, what is refused with a
403 naming the destination, and what each decision records."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tether.contracts.network import NetworkPolicy
from tether.egress.proxy import SOCKET_NAME, Decision, EgressProxy, EgressUnavailable
from tether.sandbox.image.executor.egress import relay_egress

from tests.egress.servers import MB, http_server, make_ca


async def open_run(egress: EgressProxy, name: str, *allow: str) -> str:
    """The run's proxy as its tools see it: a relay on 127.0.0.1 to the run's socket."""
    directory = await egress.open(name, NetworkPolicy(allow=list(allow)))
    return f"http://127.0.0.1:{relay_egress(os.path.join(directory, SOCKET_NAME), 0)}"


def fetch(proxy: str, url: str, *, ca: Path | None = None, data: bytes | None = None) -> tuple[int, bytes]:
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler({"http": proxy, "https": proxy})]
    if ca is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca)))
    try:
        with urllib.request.build_opener(*handlers).open(url, data=data, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def tunnel(proxy: str, destination: str) -> bytes:
    """The proxy's whole answer to a CONNECT (urllib hides a refused tunnel's body)."""
    host, port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


async def settled(egress: EgressProxy, name: str, count: int) -> list[Decision]:
    """The run's decisions, once `count` have arrived (a tunnel's comes when it closes)."""
    taken: list[Decision] = []
    for _ in range(200):
        taken += egress.take(name)
        if len(taken) >= count:
            return taken
        await asyncio.sleep(0.025)
    return taken


async def test_an_allowed_host_is_reached_over_http_and_its_bytes_are_recorded(egress: EgressProxy) -> None:
    with http_server() as port:
        proxy = await open_run(egress, "run-a", f"127.0.0.1:{port}")
        status, body = await asyncio.to_thread(fetch, proxy, f"http://127.0.0.1:{port}/hello")
        assert (status, body) == (200, f"hello from {port}, host 127.0.0.1:{port}".encode())
        [decision] = await settled(egress, "run-a", 1)
        assert decision == Decision("127.0.0.1", port, allowed=True, sent=0, received=len(body))


async def test_an_allowed_host_is_reached_over_https_through_connect_without_interception(
        egress: EgressProxy, tmp_path: Path) -> None:
    tls, ca = make_ca(tmp_path)
    with http_server(tls) as port:
        proxy = await open_run(egress, "run-b", f"localhost:{port}", f"127.0.0.1:{port}")
        # The client trusts the server's own CA only: a proxy that intercepted TLS would fail it.
        status, body = await asyncio.to_thread(fetch, proxy, f"https://localhost:{port}/hello", ca=ca)
        assert (status, body) == (200, f"hello from {port}, host localhost:{port}".encode())
        [decision] = await settled(egress, "run-b", 1)
        assert (decision.host, decision.port, decision.allowed) == ("localhost", port, True)
        assert decision.received > len(body) and decision.sent > 0  # the TLS records, both ways


async def test_a_host_not_on_the_list_gets_a_403_naming_it_and_the_policy(egress: EgressProxy) -> None:
    with http_server() as port:
        proxy = await open_run(egress, "run-c", f"127.0.0.1:{port}")
        status, body = await asyncio.to_thread(fetch, proxy, "http://evil.example/steal")
        assert status == 403
        assert b"evil.example:80 refused by this run's network allow-list (sandbox.network)" in body
        answer = await asyncio.to_thread(tunnel, proxy, "evil.example:443")
        assert answer.startswith(b"HTTP/1.1 403") and b"evil.example:443 refused" in answer
        decisions = await settled(egress, "run-c", 2)
        assert [(d.destination, d.allowed) for d in decisions] == [
            ("evil.example:80", False), ("evil.example:443", False)]


async def test_a_name_that_resolves_to_loopback_is_refused_unless_that_address_is_listed(
        egress: EgressProxy) -> None:
    with http_server() as port:
        proxy = await open_run(egress, "run-d", f"localhost:{port}")
        status, body = await asyncio.to_thread(fetch, proxy, f"http://localhost:{port}/hello")
        assert status == 403 and b"resolves to 127.0.0.1, not a public address" in body
        listed = await open_run(egress, "run-e", f"localhost:{port}", f"127.0.0.1:{port}")
        status, _ = await asyncio.to_thread(fetch, listed, f"http://localhost:{port}/hello")
        assert status == 200


async def test_a_raw_address_or_port_not_on_the_list_is_refused(egress: EgressProxy) -> None:
    with http_server() as port, http_server() as other:
        proxy = await open_run(egress, "run-f", f"127.0.0.1:{port}")
        for url in (f"http://127.0.0.1:{other}/", f"http://127.0.0.2:{port}/", f"http://[::1]:{port}/",
                    f"http://[::ffff:127.0.0.2]:{port}/"):
            status, body = await asyncio.to_thread(fetch, proxy, url)
            assert status == 403 and b"not on the allow-list" in body, url


async def test_a_connection_that_came_through_no_runs_socket_is_refused(egress: EgressProxy) -> None:
    with http_server() as port:
        await open_run(egress, "run-g", f"127.0.0.1:{port}")
        status, body = await asyncio.to_thread(
            fetch, f"http://127.0.0.1:{egress.port}", f"http://127.0.0.1:{port}/hello")
        assert status == 403 and b"this connection came through no run's socket" in body


async def test_each_run_gets_its_own_policy_on_one_proxy(egress: EgressProxy) -> None:
    with http_server() as port, http_server() as other:
        first = await open_run(egress, "run-h", f"127.0.0.1:{port}")
        second = await open_run(egress, "run-i", f"127.0.0.1:{other}")
        assert (await asyncio.to_thread(fetch, first, f"http://127.0.0.1:{other}/"))[0] == 403
        assert (await asyncio.to_thread(fetch, second, f"http://127.0.0.1:{other}/hello"))[0] == 200


async def test_a_large_download_and_a_streamed_upload_pass_whole(egress: EgressProxy) -> None:
    with http_server() as port:
        proxy = await open_run(egress, "run-j", f"127.0.0.1:{port}")
        status, body = await asyncio.to_thread(fetch, proxy, f"http://127.0.0.1:{port}/bytes/256")
        assert status == 200 and len(body) == 256 * MB
        upload = b"u" * (8 * MB)
        status, body = await asyncio.to_thread(fetch, proxy, f"http://127.0.0.1:{port}/count", data=upload)
        assert (status, body) == (200, f"received {len(upload)}".encode())
        download, sent = await settled(egress, "run-j", 2)
        assert download.received == 256 * MB and sent.sent == len(upload)


async def test_a_closed_sockets_sandbox_reaches_nothing_any_more(egress: EgressProxy) -> None:
    with http_server() as port:
        directory = await egress.open("run-k", NetworkPolicy(allow=[f"127.0.0.1:{port}"]))
        await egress.close("run-k")
        with pytest.raises(OSError):
            socket.socket(socket.AF_UNIX).connect(os.path.join(directory, SOCKET_NAME))


async def test_a_proxy_that_cannot_start_says_which_interpreter_and_what_to_set(tmp_path: Path) -> None:
    missing = EgressProxy(python=str(tmp_path / "no-python"))
    with pytest.raises(EgressUnavailable,
                       match="TETHER_EGRESS_PYTHON to an interpreter with mitmproxy 11 and uvloop"):
        await missing.open("run-l", NetworkPolicy(allow=["evil.example"]))
    # An interpreter without them: the proxy's own last line of error says which is missing.
    without = EgressProxy(python=sys.executable)
    with pytest.raises(EgressUnavailable, match=r"No module named 'uvloop'.*mitmproxy 11 and uvloop"):
        await without.open("run-m", NetworkPolicy(allow=["evil.example"]))
    await without.stop()

