"""The tools' listener, handed to the proxy: the executor makes it on the sandbox's loopback
and passes its descriptor over the run's hand-off socket, so the proxy accepts the tools'
connections itself. Here the listener is made on the host (a sandbox's is the same socket in
another network namespace); what a tool might send the hand-off socket instead is refused,
and the proxy goes on serving the run with nothing of it kept. Both sockets are the
sandboxes' uid's alone."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tether.contracts.network import NetworkPolicy
from tether.egress.proxy import SOCKET_NAME, EgressProxy
from tether.sandbox.hardening import SANDBOX_UID
from tether.sandbox.image.executor.config import HANDOFF_NAME
from tether.sandbox.image.executor.egress import hand_over, open_egress

from tests.egress.conftest import EGRESS_PYTHON
from tests.egress.servers import http_server
from tests.egress.test_proxy import fetch, settled

HOST = "127.0.0.2"
NOBODY = 65534


async def until_handed(egress: EgressProxy, name: str) -> None:
    for _ in range(200):
        if egress.handed(name):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"the proxy never reported {name}'s listener as handed over")


def proxy_descriptors(egress: EgressProxy) -> int:
    assert egress._process is not None
    return len(os.listdir(f"/proc/{egress._process.pid}/fd"))


async def test_the_proxy_accepts_the_handed_listeners_connections_itself(egress: EgressProxy) -> None:
    with http_server(host=HOST) as port:
        directory = await egress.open("handed", NetworkPolicy(allow=[f"{HOST}:{port}"]))
        listener = socket.create_server(("127.0.0.1", 0))
        handed = await asyncio.to_thread(hand_over, listener, os.path.join(directory, HANDOFF_NAME))
        assert handed is not None
        await until_handed(egress, "handed")
        # Nothing in this process accepts on the listener: the proxy answers.
        proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert await asyncio.to_thread(fetch, proxy, f"http://{HOST}:{port}/hello") == (
            200, f"hello from {port}, host {HOST}:{port}".encode())
        status, body = await asyncio.to_thread(fetch, proxy, "http://evil.example/")
        assert status == 403 and b"evil.example:80 refused" in body
        decisions = await settled(egress, "handed", 2)
        assert [(d.destination, d.allowed) for d in decisions] == [
            (f"{HOST}:{port}", True), ("evil.example:80", False)]
        handed.close()
        listener.close()


async def test_once_the_proxy_lets_go_the_executor_relays_and_a_successor_serves_the_run() -> None:
    """A worker that dies takes its proxy (and the proxy's copy of the listener) with it: the
    executor relays from then on, to whatever proxy opens the run's socket again."""
    home = Path(tempfile.mkdtemp(prefix="tether-handoff-"))
    first = EgressProxy(python=str(EGRESS_PYTHON), directory=home)
    with http_server(host=HOST) as port:
        network = NetworkPolicy(allow=[f"{HOST}:{port}"])
        directory = await first.open("kept", network)
        port_inside = await asyncio.to_thread(open_egress, os.path.join(directory, SOCKET_NAME), 0)
        proxy = f"http://127.0.0.1:{port_inside}"
        await until_handed(first, "kept")
        hello = f"http://{HOST}:{port}/hello"
        assert (await asyncio.to_thread(fetch, proxy, hello))[0] == 200
        await first.stop()
        status, body = await asyncio.to_thread(fetch, proxy, hello)
        assert status == 503 and b"the host's egress proxy is not there" in body
        successor = EgressProxy(python=str(EGRESS_PYTHON), directory=home)
        try:
            assert await successor.open("kept", network) == directory
            assert (await asyncio.to_thread(fetch, proxy, hello))[0] == 200
            assert not successor.handed("kept")  # relayed, as under gVisor
        finally:
            await successor.stop()


def no_descriptor(connection: socket.socket) -> None:
    connection.sendall(b"L")


def a_pipe(connection: socket.socket) -> None:
    read, write = os.pipe()
    socket.send_fds(connection, [b"L"], [read])
    os.close(read)
    os.close(write)


def a_file(connection: socket.socket) -> None:
    with open(__file__, "rb") as file:
        socket.send_fds(connection, [b"L"], [file.fileno()])


def a_connected_socket(connection: socket.socket) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as client:
        socket.send_fds(connection, [b"L"], [client.fileno()])


def a_unix_listener(connection: socket.socket) -> None:
    with tempfile.TemporaryDirectory() as directory, socket.socket(socket.AF_UNIX) as listener:
        listener.bind(os.path.join(directory, "s"))
        listener.listen()
        socket.send_fds(connection, [b"L"], [listener.fileno()])


def a_datagram_socket(connection: socket.socket) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
        datagram.bind(("127.0.0.1", 0))
        socket.send_fds(connection, [b"L"], [datagram.fileno()])


def many_listeners(connection: socket.socket) -> None:
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(8)]
    socket.send_fds(connection, [b"L"], [listener.fileno() for listener in listeners])
    for listener in listeners:
        listener.close()


HOSTILE: list[Callable[[socket.socket], None]] = [
    no_descriptor, a_pipe, a_file, a_connected_socket, a_unix_listener, a_datagram_socket, many_listeners]


async def test_anything_but_one_listening_tcp_socket_is_refused_and_nothing_of_it_kept(
        egress: EgressProxy) -> None:
    with http_server(host=HOST) as port:
        directory = await egress.open("hostile", NetworkPolicy(allow=[f"{HOST}:{port}"]))
        path = os.path.join(directory, HANDOFF_NAME)
        await egress.settle()
        before = proxy_descriptors(egress)

        def send(hostile: Callable[[socket.socket], None]) -> bytes:
            with socket.socket(socket.AF_UNIX) as connection:
                connection.settimeout(10)
                connection.connect(path)
                hostile(connection)
                return connection.recv(64)

        for _ in range(5):
            for hostile in HOSTILE:
                assert await asyncio.to_thread(send, hostile) == b"", hostile.__name__
        await egress.settle()
        assert proxy_descriptors(egress) == before
        assert not egress.handed("hostile")
        # The run's own listener is still taken after all that, and served.
        listener = socket.create_server(("127.0.0.1", 0))
        handed = await asyncio.to_thread(hand_over, listener, path)
        assert handed is not None
        proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert (await asyncio.to_thread(fetch, proxy, f"http://{HOST}:{port}/hello"))[0] == 200
        # A second listener (a tool's, after the executor's) is refused, and its flags are
        # left as they were: it stays the tool's own, blocking socket.
        second = socket.create_server(("127.0.0.1", 0))
        assert await asyncio.to_thread(hand_over, second, path) is None
        assert second.getblocking()
        for kept in (handed, listener, second):
            kept.close()


async def test_a_hand_off_that_says_nothing_is_dropped_after_a_while_and_the_run_still_served(
        egress: EgressProxy) -> None:
    with http_server(host=HOST) as port:
        directory = await egress.open("silent", NetworkPolicy(allow=[f"{HOST}:{port}"]))
        path = os.path.join(directory, HANDOFF_NAME)
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(path)
        silent.settimeout(30)
        assert await asyncio.to_thread(silent.recv, 64) == b""  # the proxy's timeout closed it
        silent.close()
        listener = socket.create_server(("127.0.0.1", 0))
        handed = await asyncio.to_thread(hand_over, listener, path)
        assert handed is not None
        proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
        assert (await asyncio.to_thread(fetch, proxy, f"http://{HOST}:{port}/hello"))[0] == 200
        handed.close()
        listener.close()


@pytest.mark.parametrize("closing", ["the run", "the proxy"])
async def test_closing_lets_go_of_the_listener_and_the_hand_off_socket(
        egress: EgressProxy, closing: str) -> None:
    directory = await egress.open("closed", NetworkPolicy(allow=["evil.example"]))
    listener = socket.create_server(("127.0.0.1", 0))
    handed = await asyncio.to_thread(hand_over, listener, os.path.join(directory, HANDOFF_NAME))
    assert handed is not None
    await until_handed(egress, "closed")
    if closing == "the run":
        await egress.close("closed")
    else:
        await egress.stop()
    handed.settimeout(10)
    assert await asyncio.to_thread(handed.recv, 64) == b""  # what tells the executor to relay
    assert not os.path.exists(os.path.join(directory, HANDOFF_NAME))
    assert not egress.handed("closed")
    handed.close()
    listener.close()


CONNECT_AS = """
import socket, sys
for path in sys.argv[1:]:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
            print("connected")
        except PermissionError:
            print("refused")
"""


def connect_as(uid: int, *paths: str) -> list[str]:
    """Connects to each path as `uid`, a host process of that user: what it was let do."""
    # The system's interpreter: the venv's may sit where other users can't read it (/root).
    done = subprocess.run(["/usr/bin/python3", "-c", CONNECT_AS, *paths], user=uid, group=uid,
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split()


async def test_a_runs_sockets_are_the_sandboxes_alone_not_any_local_users(egress: EgressProxy) -> None:
    # Whoever connects gets the run's way out and the secrets added on it: another user of
    # the worker's host must not.
    if os.geteuid() != 0:
        pytest.fail("this test gives sockets away and connects as other users: run it as root")
    directory = await egress.open("private", NetworkPolicy(allow=["evil.example"]))
    paths = [os.path.join(directory, name) for name in (SOCKET_NAME, HANDOFF_NAME)]
    for path in paths:
        info = os.stat(path)
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (SANDBOX_UID, 0o600)
    assert await asyncio.to_thread(connect_as, NOBODY, *paths) == ["refused", "refused"]
    assert await asyncio.to_thread(connect_as, SANDBOX_UID, *paths) == ["connected", "connected"]
