"""A tool call's egress decisions are its own: `settle()` right after the tool has gone finds
every decision of the connections the tool made, whatever the server does with its end."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tether.contracts.network import NetworkPolicy
from tether.egress.proxy import SOCKET_NAME, Decision, EgressProxy

HELD_S = 5.0
"""How long the server keeps a connection open after the client's end has gone."""


@contextmanager
def lingering_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that answers a line with `pong\\n` and keeps its end of the
    connection open for HELD_S after the client's end closes, as a server that ignores a
    half-close does."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve(connection: socket.socket) -> None:
        with connection:
            connection.recv(1024)
            connection.sendall(b"pong\n")
            done.wait(HELD_S)

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        listener.close()


def ping_through_tunnel(path: str, destination: str) -> bytes:
    """A tool's whole use of a tunnel, on the run's socket as the executor's relay passes it
    on (the relay, a thread of this process, would add a race of its own): CONNECT, a line
    each way, and gone."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(30)
        connection.connect(path)
        connection.sendall(f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n\r\n".encode())
        answer = b""
        while not answer.endswith(b"\r\n\r\n"):
            answer += connection.recv(1)
        connection.sendall(b"ping\n")
        return answer + connection.recv(1024)


async def test_a_tunnel_is_recorded_by_the_settle_that_follows_its_tool_even_if_its_server_lingers(
        egress: EgressProxy) -> None:
    with lingering_server() as port:
        directory = await egress.open("run-settle", NetworkPolicy(allow=[f"127.0.0.1:{port}"]))
        destination = f"127.0.0.1:{port}"
        answer = await asyncio.to_thread(ping_through_tunnel, os.path.join(directory, SOCKET_NAME),
                                         destination)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"pong\n")
        await egress.settle()
        decisions = egress.take("run-settle")
        connect = len(f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n\r\n")
        assert decisions == [Decision("127.0.0.1", port, allowed=True, sent=connect + len(b"ping\n"),
                                      received=len(answer))]

