"""Tunnels the proxy relays itself (`egress/tunnel.py`): a CONNECT to an allowed host the
proxy adds nothing to. What a tool gets when that host can't be reached, and what becomes of
an open tunnel when its run's socket closes."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tether.contracts.network import NetworkPolicy
from tether.egress.proxy import SOCKET_NAME, EgressProxy

from tests.egress.test_proxy import open_run, settled, tunnel

WAIT_S = 10.0


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return int(listener.getsockname()[1])


async def test_an_allowed_host_that_cannot_be_reached_gets_a_502_naming_it_and_the_decision_says_why(
        egress: EgressProxy) -> None:
    port = closed_port()
    proxy = await open_run(egress, "run-unreachable", f"127.0.0.1:{port}")
    answer = (await asyncio.to_thread(tunnel, proxy, f"127.0.0.1:{port}")).decode()
    assert answer.startswith("HTTP/1.1 502") and f"127.0.0.1:{port}" in answer, answer
    [decision] = await settled(egress, "run-unreachable", 1)
    assert decision.allowed and "cannot connect" in decision.reason, decision


@contextmanager
def server_told_of_a_full_close() -> Iterator[tuple[int, threading.Event]]:
    """A TCP server on 127.0.0.1 that answers a line and then keeps writing until its peer's
    socket is gone (a reset), not merely half-closed; the event is set then."""
    listener = socket.create_server(("127.0.0.1", 0))
    gone = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(b"pong\n")
            deadline = time.monotonic() + WAIT_S
            try:
                while time.monotonic() < deadline:
                    connection.sendall(b".")
                    time.sleep(0.05)
            except OSError:
                gone.set()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1]), gone
    finally:
        listener.close()


async def test_closing_a_runs_socket_closes_its_open_tunnels_server_end_too(egress: EgressProxy) -> None:
    with server_told_of_a_full_close() as (port, gone):
        directory = await egress.open("run-closing", NetworkPolicy(allow=[f"127.0.0.1:{port}"]))
        with socket.socket(socket.AF_UNIX) as tool:
            tool.settimeout(WAIT_S)
            await asyncio.to_thread(tool.connect, os.path.join(directory, SOCKET_NAME))
            tool.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            answer = b""
            while not answer.endswith(b"\r\n\r\n"):
                answer += await asyncio.to_thread(tool.recv, 1)
            assert answer.startswith(b"HTTP/1.1 200")
            tool.sendall(b"ping\n")
            assert await asyncio.to_thread(tool.recv, 5) == b"pong\n"
            await egress.close("run-closing")
            assert await asyncio.to_thread(gone.wait, WAIT_S)
