"""The way out, where the run's policy allows one.

The container has no network but its own loopback. Tools reach the host's egress proxy
through the standard proxy variables, pointing at a listener on 127.0.0.1 made here. Its
file descriptor is handed to the proxy over the mounted hand-off socket, so the proxy accepts
the tools' connections itself: nothing in the sandbox sits on their path, one process
crossing fewer each way for every round trip. The connection that carried it stays open; when
it ends (the proxy went with its worker) or the hand-off can't be made (gVisor's sockets are
not the host's to pass), this process relays each connection to the mounted socket instead.
Either way the proxy knows the run by the socket the listener or connection came through, so
whatever a tool sends (or connects to the sockets itself) it gets the run's own policy and
nothing more.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from .config import CA_VARIABLES, EGRESS_CHUNK, EGRESS_PORT, HANDOFF_NAME, HANDOFF_TIMEOUT_S


def open_egress(socket_path: str, port: int = EGRESS_PORT) -> int:
    """Listens on 127.0.0.1:`port` (0: any) for the tools, handing the listener to the proxy
    where it takes it and relaying to its socket where not; returns the port."""
    listener = socket.create_server(("127.0.0.1", port))
    handed = hand_over(listener, os.path.join(os.path.dirname(socket_path), HANDOFF_NAME))
    if handed is None:
        threading.Thread(target=_accept_egress, args=(listener, socket_path), daemon=True).start()
    else:
        threading.Thread(target=_relay_once_gone, args=(handed, listener, socket_path),
                         daemon=True).start()
    return int(listener.getsockname()[1])


def relay_egress(socket_path: str, port: int = EGRESS_PORT) -> int:
    """Listens on 127.0.0.1:`port` (0: any) and relays every connection to the proxy's socket;
    returns the port."""
    listener = socket.create_server(("127.0.0.1", port))
    threading.Thread(target=_accept_egress, args=(listener, socket_path), daemon=True).start()
    return int(listener.getsockname()[1])


def hand_over(listener: socket.socket, handoff_path: str) -> socket.socket | None:
    """Gives the proxy `listener`'s descriptor; the connection that carried it while the proxy
    accepts on it, None when it did not take it (no hand-off socket: a proxy from before it;
    descriptors that can't cross, under gVisor; a refusal)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(HANDOFF_TIMEOUT_S)
        connection.connect(handoff_path)
        socket.send_fds(connection, [b"L"], [listener.fileno()])
        if connection.recv(64) != b"ok\n":
            connection.close()
            return None
        connection.settimeout(None)
        return connection
    except OSError:
        connection.close()
        return None


def _relay_once_gone(handed: socket.socket, listener: socket.socket, socket_path: str) -> None:
    """Waits for the hand-off's connection to end, then relays on the listener itself: the
    proxy went (a successor opens the run's socket again), and a tool gets an answer that says
    so, never a connection no one accepts."""
    try:
        while handed.recv(64):
            pass
    except OSError:
        pass
    handed.close()
    _accept_egress(listener, socket_path)


def egress_environment(port: int, ca_bundle: str = "") -> dict:
    """The proxy variables; with `ca_bundle` (a run with secrets), the variables that point
    OpenSSL, requests, pip, node, git and curl at it too."""
    proxy = f"http://127.0.0.1:{port}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {name: proxy for name in names} | {name.lower(): proxy for name in names}
    trust = {name: ca_bundle for name in CA_VARIABLES} if ca_bundle else {}
    return env | trust | {"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}


def _accept_egress(listener: socket.socket, socket_path: str) -> None:
    # The descriptor's flags are shared with any copy handed to the proxy, whose event loop
    # makes it non-blocking.
    listener.setblocking(True)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # out of descriptors for now: the tool's connection waits, not the relay
            time.sleep(0.05)
            continue
        try:
            threading.Thread(target=_relay_one, args=(client, socket_path), daemon=True).start()
        except RuntimeError:  # at the process limit: this connection fails, the relay goes on
            client.close()


def _relay_one(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # A tool's small writes (a CONNECT, a TLS handshake's records) go on at once, not
        # behind Nagle's wait for the previous segment's ACK.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            upstream.connect(socket_path)
        except OSError as error:
            # The proxy went with its worker: say so, rather than reset a tool that can't tell why.
            body = (f"tether egress: the host's egress proxy is not there ({error.strerror}):"
                    " its worker restarted, or the proxy stopped, since this sandbox was made\n").encode()
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
    except (OSError, RuntimeError):
        pass
    finally:
        upstream.close()
        client.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(EGRESS_CHUNK):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
