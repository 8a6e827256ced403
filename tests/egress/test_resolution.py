"""The egress proxy refuses by the addresses a name resolves to, and connects to the address
it checked: names answered by a DNS server the test controls (`dns_server.py`), through the
proxy as a worker runs it and the relay a sandbox's tools reach it by.

What is testable here: the proxy's lookups go to the test's server (the proxy runs in a mount
namespace whose /etc/resolv.conf names it), and every address is on the host's loopback or
refused before any connection is made. A name resolving to a public address is not tested:
no public address is reachable from here."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from tether import client as tether
from tether.egress.proxy import EgressProxy

from tests.egress.conftest import EGRESS_PYTHON
from tests.egress.dns_server import DnsServer, resolving_with
from tests.egress.test_proxy import fetch, open_run
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

CHECKED, REBOUND = "127.0.0.2", "127.0.0.3"
"""Where a rebinding name leads first (on the allow-list) and next (not)."""


class Says(BaseHTTPRequestHandler):
    """Answers every GET with the address it listens on, so a test knows which was reached."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"served by {self.server.server_address[0]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def servers_on_one_port(*hosts: str) -> Iterator[int]:
    """A server on each address, all on the same port (the one the first got)."""
    started: list[ThreadingHTTPServer] = []
    try:
        port = 0
        for host in hosts:
            server = ThreadingHTTPServer((host, port), Says)
            port = server.server_address[1]
            threading.Thread(target=server.serve_forever, daemon=True).start()
            started.append(server)
        yield port
    finally:
        for server in started:
            server.shutdown()
            server.server_close()


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer({"rebind.evil.example": [[CHECKED], [REBOUND]],
                    "internal.evil.example": [["10.1.2.3", "169.254.169.254"]]}) as server:
        yield server


@pytest.fixture
async def egress(dns: DnsServer, tmp_path: Path) -> AsyncIterator[EgressProxy]:
    """The proxy as a worker runs it, asking `dns` for every name."""
    if not EGRESS_PYTHON.exists():
        pytest.fail(f"{EGRESS_PYTHON} is missing: run `make deps` (it installs mitmproxy there)")
    proxy = EgressProxy(python=resolving_with(dns, str(EGRESS_PYTHON), tmp_path))
    yield proxy
    await proxy.stop()


def through_tunnel(proxy: str, destination: str) -> bytes:
    """A GET sent inside a CONNECT tunnel (the bytes an HTTPS client would send, in clear)."""
    host, port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = connection.recv(65536)
            assert chunk, f"the proxy closed the tunnel: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head
        connection.sendall(f"GET / HTTP/1.1\r\nHost: {destination}\r\nConnection: close\r\n\r\n".encode())
        answer = head.split(b"\r\n\r\n", 1)[1]
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


async def test_a_name_that_resolves_elsewhere_the_next_time_is_reached_at_the_address_checked(
        egress: EgressProxy, dns: DnsServer) -> None:
    with servers_on_one_port(CHECKED, REBOUND) as port:
        proxy = await open_run(egress, "run-rebind", f"rebind.evil.example:{port}", f"{CHECKED}:{port}")
        status, body = await asyncio.to_thread(fetch, proxy, f"http://rebind.evil.example:{port}/")
        assert (status, body) == (200, f"served by {CHECKED}".encode())
        assert dns.asked["rebind.evil.example"] == 1  # the check's lookup, and no second one


async def test_a_tunnel_to_a_name_that_resolves_elsewhere_the_next_time_leads_to_the_address_checked(
        egress: EgressProxy, dns: DnsServer) -> None:
    with servers_on_one_port(CHECKED, REBOUND) as port:
        proxy = await open_run(egress, "run-rebind-tunnel", f"rebind.evil.example:{port}",
                               f"{CHECKED}:{port}")
        answer = await asyncio.to_thread(through_tunnel, proxy, f"rebind.evil.example:{port}")
        assert answer.endswith(f"served by {CHECKED}".encode())
        assert dns.asked["rebind.evil.example"] == 1


async def test_a_listed_name_that_resolves_to_private_or_metadata_addresses_is_refused_naming_them(
        egress: EgressProxy) -> None:
    proxy = await open_run(egress, "run-internal", "internal.evil.example")
    status, body = await asyncio.to_thread(fetch, proxy, "http://internal.evil.example/latest/meta-data/")
    assert status == 403
    assert (b"internal.evil.example:80 refused by this run's network allow-list (sandbox.network):"
            b" it resolves to 10.1.2.3, 169.254.169.254, not a public address") in body


FETCH = """
import urllib.error, urllib.request
try:
    print(urllib.request.urlopen("{url}", timeout=20).read().decode())
except urllib.error.HTTPError as error:
    print(error.code)
"""


async def test_a_run_in_a_sandbox_reaches_a_rebinding_name_at_the_checked_address_and_no_internal_one(
        temporal_client: Client, docker_engine: Any, dns: DnsServer, tmp_path: Path) -> None:
    queue = f"egress-dns-{uuid.uuid4().hex[:6]}"
    # The worker's proxy asks the test's DNS server, as it would the host's resolver.
    python = resolving_with(dns, str(EGRESS_PYTHON), tmp_path)
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue,
                           log_file=tmp_path / "worker.log",
                           env={"TETHER_EGRESS_PYTHON": python, "TETHER_TRACE_FILE": "off"})
    await worker.start()
    try:
        with servers_on_one_port(CHECKED, REBOUND) as port:
            handle = await tether.start_run(temporal_client, scripted_run(
                "fetch", turn(python=FETCH.format(url=f"http://rebind.evil.example:{port}/")),
                turn(python=FETCH.format(url="http://internal.evil.example/latest/meta-data/")),
                turn("done"),
                sandbox={"network": {"allow": [f"rebind.evil.example:{port}", f"{CHECKED}:{port}",
                                               "internal.evil.example"]}}), task_queue=queue)
            result = await handle.result()
        steps = await tether.get_transcript(temporal_client, handle.id)  # a worker answers it
    finally:
        await worker.stop()
    assert result.status == "completed", result
    rebinding, internal, _ = steps
    assert rebinding.tool_results[0].stdout == f"served by {CHECKED}\n"
    assert rebinding.note is None
    assert dns.asked["rebind.evil.example"] == 1
    assert internal.tool_results[0].stdout == "403\n"
    assert internal.note == "python: egress denied internal.evil.example:80"
