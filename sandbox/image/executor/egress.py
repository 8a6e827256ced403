"""The way out, where the run's policy allows one.

The container has no network but its own loopback. Tools reach the host's egress proxy
through the standard proxy variables, pointing at this relay on 127.0.0.1, which passes each
connection to the mounted socket. The proxy knows the run by the socket alone, so whatever a
tool sends (or connects to the socket itself) it gets the run's own policy and nothing more.
"""

from __future__ import annotations

import socket
import threading

from .config import CA_VARIABLES, EGRESS_CHUNK, EGRESS_PORT


def relay_egress(socket_path: str, port: int = EGRESS_PORT) -> int:
    """Listens on 127.0.0.1:`port` (0: any) and relays every connection to the proxy's socket;
    returns the port."""
    listener = socket.create_server(("127.0.0.1", port))
    threading.Thread(target=_accept_egress, args=(listener, socket_path), daemon=True).start()
    return int(listener.getsockname()[1])


def egress_environment(port: int, ca_bundle: str = "") -> dict:
    """The proxy variables; with `ca_bundle` (a run with secrets), the variables that point
    OpenSSL, requests, pip, node, git and curl at it too."""
    proxy = f"http://127.0.0.1:{port}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {name: proxy for name in names} | {name.lower(): proxy for name in names}
    trust = {name: ca_bundle for name in CA_VARIABLES} if ca_bundle else {}
    return env | trust | {"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}


def _accept_egress(listener: socket.socket, socket_path: str) -> None:
    while True:
        client, _ = listener.accept()
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
