"""Tunnels the proxy relays itself (`egress/tunnel.py`): a CONNECT to an allowed host the
proxy adds nothing to. What a tool gets when that host can't be reached, and what becomes of
an open tunnel when its run's socket closes, and one a tool half-closes."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from tether.contracts.network import NetworkPolicy
from tether.egress.proxy import SOCKET_NAME, Decision, EgressProxy
from tether.sandbox.image.executor.egress import open_egress, relay_egress

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


@contextmanager
def server_answering_at_eof() -> Iterator[int]:
    """A TCP server on 127.0.0.2 that reads until its peer half-closes, then says how many
    bytes it read: as `nc -N`, rsync or a request whose end is the end of the stream."""
    listener = socket.create_server(("127.0.0.2", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            total = 0
            while chunk := connection.recv(65536):
                total += len(chunk)
            connection.sendall(b"read %d bytes\n" % total)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


@pytest.mark.parametrize("way", ["handed listener", "executor's relay"])
async def test_a_tool_that_half_closes_its_tunnel_still_gets_the_answer(
        egress: EgressProxy, way: str) -> None:
    told: list[tuple[Decision, bool]] = []  # what the metrics are given
    egress.on_decision = lambda decision, new_request: told.append((decision, new_request))
    with server_answering_at_eof() as port:
        directory = await egress.open("run-half", NetworkPolicy(allow=[f"127.0.0.2:{port}"]))
        path = os.path.join(directory, SOCKET_NAME)
        listen = await asyncio.to_thread(open_egress if way == "handed listener" else relay_egress, path, 0)

        def talk() -> bytes:
            with socket.create_connection(("127.0.0.1", listen), timeout=WAIT_S) as tool:
                tool.sendall(f"CONNECT 127.0.0.2:{port} HTTP/1.1\r\n\r\n".encode())
                answer = b""
                while not answer.endswith(b"\r\n\r\n"):
                    answer += tool.recv(1)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                tool.sendall(b"x" * 300_000)
                tool.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := tool.recv(65536):
                    answer += chunk
                return answer

        assert await asyncio.to_thread(talk) == b"read 300000 bytes\n"
        # Every byte is counted: the answer that came after the tool's end may come in a
        # decision of its own (the tunnel's was recorded when the tool's end ended).
        sent = 300_000 + len(f"CONNECT 127.0.0.2:{port} HTTP/1.1\r\n\r\n")
        received = len(b"HTTP/1.1 200 Connection established\r\n\r\nread 300000 bytes\n")
        taken = await settled(egress, "run-half", 1)
        for _ in range(200):
            if sum(d.received for d in taken) >= received:
                break
            await asyncio.sleep(0.025)
            taken += egress.take("run-half")
        assert {d.destination for d in taken} == {f"127.0.0.2:{port}"}
        assert (sum(d.sent for d in taken), sum(d.received for d in taken)) == (sent, received)
        # The metrics count one request, and all its bytes, the late ones too.
        assert [new_request for _, new_request in told].count(True) == 1
        assert (sum(d.sent for d, _ in told), sum(d.received for d, _ in told)) == (sent, received)
