"""The egress proxy: mitmproxy with tether's policy addon, one process per sandbox host.

Run by the worker (`egress/proxy.py`) with the interpreter of an environment that has
mitmproxy (mitmproxy pins versions tether's own dependencies can't share). It imports nothing
of tether's but the modules beside it: `policy.py`, `interception.py`, `tunnel.py` and
`handoff.py`.

Each run that may reach the network gets a unix socket of its own, mounted into its sandbox,
and a hand-off socket beside it, where the sandbox's executor passes the descriptor of the
listener it made on the sandbox's loopback for the tools: the proxy then accepts their
connections on it itself, as if they had come through the run's socket, with nothing in the
sandbox relaying them (one listener a run; anything but a listening TCP socket is refused).
A connection accepted on either whose first request is a CONNECT to an allowed host that the
proxy adds nothing to is relayed here (`tunnel.py`); any other is handed straight to
mitmproxy's connection handler (no second connection), with the bytes read so far, and the
handler's client id is recorded as that run's before it reads: the proxy knows a run by the
socket its connection came through, never by anything the tool sends. A connection to
mitmproxy's own listener on 127.0.0.1 (from anything else on the host) has no run and is
refused.

Control, one JSON object a line: on stdin `{"op": "open", "key", "socket", "allow": [{host,
port}], "secrets": [{host, header, prefix, env}], "values": {env: value}, "owner": uid}`,
`{"op": "close", "key"}` and `{"op": "ping"}`, each answered on stdout with `{"id", "ok"}`
(`open`'s also with `"private"`, whether the run's sockets are the owner's alone, and `"ca"`,
the run CA's certificate, when the run has secrets); stdout also carries `{"event":
"decision", "key", "host", "port", "allowed", "reason", "sent", "received"}` for every
request or tunnel (a tunnel's when the tool's end of it ends; bytes that pass after that come
in one more such event with `"more": true`), and `{"event": "listener", "key"}` when a run's
listener is handed over. stdin closing ends the process.

Secrets' values come over stdin, a pipe only the worker holds: never in argv (which `ps`
shows) nor in this process's environment, and never written out again (not in a reply, an
event, a log line or an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvloop
from handoff import HANDOFF_NAME, give, received_listener, unix_listener
from interception import Interception, RunCA, Secret
from mitmproxy import ctx, http, master, options, tls
from mitmproxy.addons import block, core, disable_h2c, dns_resolver, next_layer, proxyserver, tlsconfig
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler, ServerInstance
from policy import Entry, Policy, Refused, literal
from tunnel import ESTABLISHED, read_connect, relay

PROXY_HOST = "127.0.0.1"


@dataclass
class Connection:
    """One tool connection, from the run's socket to mitmproxy."""

    key: str
    tunnel: tuple[str, int] | None = None
    """Where an allowed CONNECT leads: the connection carries nothing else from then on."""
    ca: RunCA | None = None
    """Set when the tunnel leads to one of the run's secret hosts: it is terminated with this."""
    secrets: list[Secret] = field(default_factory=list)
    upstream_error: str = ""
    """Why the secret host's TLS failed (its certificate not trusted, say): its requests get
    a 502 saying so, and the secret goes nowhere."""
    sent: int = 0
    received: int = 0
    reported: tuple[int, int] | None = None
    """The bytes (sent, received) a decision has recorded so far; None before the first."""


@dataclass
class Run:
    policy: Policy
    server: asyncio.AbstractServer
    path: str
    inode: int
    """The socket's: a successor that made it again after this process's worker died keeps it."""
    secrets: dict[str, list[Secret]] = field(default_factory=dict)
    """Secret host (lower-case name, or address as `ipaddress` spells it) → headers to add."""
    ca: RunCA | None = None
    connections: dict[asyncio.Task[None], asyncio.StreamWriter] = field(default_factory=dict)
    relayed: set[asyncio.Task[Any]] = field(default_factory=set)
    """The connections relayed here (`tunnel.py`): their server's end is closed with the run."""
    handoff: asyncio.Task[None] | None = None
    """Takes the run's listener from its sandbox."""
    listener: asyncio.AbstractServer | None = None
    """The sandbox's own listener, handed over: its tools' connections are accepted here."""
    handed_by: socket.socket | None = None
    """The connection that handed it: closing it tells the executor to relay instead."""


class Egress:
    """The runs' sockets and relays, and the policy addon mitmproxy calls."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.by_client: dict[str, Connection] = {}
        """mitmproxy's client id of each connection accepted on a run's socket → its run."""
        self.proxy_port = 0
        self.instance: ServerInstance[Any] | None = None
        """mitmproxy's regular proxy server: the runs' connections are handled as its own."""

    # --- events to the worker --------------------------------------------------------------
    def emit(self, message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def decided(self, key: str, host: str, port: int, *, allowed: bool, reason: str = "",
                sent: int = 0, received: int = 0, more: bool = False) -> None:
        message = {"event": "decision", "key": key, "host": host, "port": port, "allowed": allowed,
                   "reason": reason, "sent": sent, "received": received}
        self.emit(message | {"more": True} if more else message)

    # --- the runs' sockets -------------------------------------------------------------------
    async def open(self, key: str, path: str, entries: list[Entry],
                   secrets: dict[str, list[Secret]], owner: int | None) -> dict[str, Any]:
        """Opens the run's sockets, `owner`'s alone where they can be given (see `handoff.give`);
        returns `private` (whether they were) and `ca`, its CA's certificate, when it has
        secrets."""
        await self.close(key)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = await asyncio.start_unix_server(lambda r, w: self._accept(key, r, w), path=path)
        private = give(path, owner)
        handoff = unix_listener(os.path.join(os.path.dirname(path), HANDOFF_NAME), owner)
        ca = RunCA(key, ctx.master.addons.get("tlsconfig").certstore.dhparams) if secrets else None
        run = self.runs[key] = Run(Policy(entries), server, path, os.stat(path).st_ino, secrets, ca)
        run.handoff = asyncio.create_task(self._take_listeners(key, run, handoff))
        return {"private": private} | ({"ca": ca.pem} if ca is not None else {})

    async def close(self, key: str) -> None:
        run = self.runs.pop(key, None)
        if run is None:
            return
        run.server.close()
        if run.handoff is not None:
            run.handoff.cancel()
        if run.listener is not None:
            run.listener.close()
        if run.handed_by is not None:
            run.handed_by.close()
        # mitmproxy's handler ends a connection whose client went (and its server's with it).
        for writer in list(run.connections.values()):
            writer.transport.abort()
        for task in list(run.relayed):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            if os.stat(run.path).st_ino == run.inode:
                os.unlink(run.path)

    async def _take_listeners(self, key: str, run: Run, handoff: socket.socket) -> None:
        """Serves the run's hand-off socket, one connection at a time, until the run closes;
        the first listening TCP socket handed over becomes the run's listener."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                connection, _ = await loop.sock_accept(handoff)
                try:
                    listener = await received_listener(connection)
                    if listener is None or run.listener is not None or self.runs.get(key) is not run:
                        if listener is not None:
                            listener.close()
                        connection.close()
                        continue
                    # Only now: the flag is shared with the sender's descriptor.
                    listener.setblocking(False)
                    run.listener = await asyncio.start_server(
                        lambda r, w: self._accept(key, r, w), sock=listener)
                    run.handed_by = connection
                    await loop.sock_sendall(connection, b"ok\n")
                except OSError:
                    connection.close()
                    continue
                self.emit({"event": "listener", "key": key})
        finally:
            handoff.close()
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(os.path.dirname(run.path), HANDOFF_NAME))

    def _accept(self, key: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        run = self.runs.get(key)
        if run is None or self.instance is None:
            writer.close()
            return
        task = asyncio.create_task(self._handle(key, self.instance, reader, writer))
        run.connections[task] = writer
        task.add_done_callback(lambda done: run.connections.pop(done, None))

    async def _handle(self, key: str, instance: ServerInstance[Any], reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        """What mitmproxy's own listener does with a connection it accepts, for one accepted on
        the run's socket: the run is recorded by the handler's client id before it reads."""
        connection = Connection(key)
        try:
            head, target = await read_connect(reader)
            if target is not None and await self._pass_through(connection, target, head, reader, writer):
                return
        except (OSError, asyncio.CancelledError):
            writer.close()
            self._report(connection)
            return
        stream = _Counted(reader, writer, connection, self._report, head)
        handler = ProxyConnectionHandler(ctx.master, stream, stream, ctx.options, instance.mode)
        handler.layer = instance.make_top_layer(handler.layer.context)
        client_id = handler.client.id
        self.by_client[client_id] = connection
        try:
            with instance.manager.register_connection(client_id, handler):
                await handler.handle_client()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self.by_client.pop(client_id, None)
            self._report(connection)

    async def _pass_through(self, connection: Connection, target: tuple[str, int], head: bytes,
                            reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Relays an allowed tunnel that passes through untouched (see `tunnel.py`); False
        when the CONNECT is mitmproxy's to answer (refused, to a secret host)."""
        host, port = target
        run = self.runs.get(connection.key)
        if run is None or run.secrets.get(_canonical(host)):
            return False
        try:
            chosen = await _pin(run.policy, host, port)
        except Refused:
            return False
        connection.tunnel = (host.lower(), port)
        connection.sent += len(head)
        task = asyncio.current_task()
        assert task is not None
        run.relayed.add(task)
        try:
            try:
                upstream = await asyncio.open_connection(chosen, port)
            except OSError as error:
                connection.upstream_error = f"cannot connect to {chosen}:{port}: {error.strerror or error}"
                answer = _unreachable(connection)
            else:
                upstream[1].get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                answer = ESTABLISHED
            writer.write(answer)
            connection.received += len(answer)
            if answer is not ESTABLISHED:
                return True

            def count(sent: int, received: int) -> None:
                connection.sent += sent
                connection.received += received
            await relay(reader, writer, upstream, count, lambda: self._report(connection))
        except OSError:
            pass
        finally:
            run.relayed.discard(task)
            writer.close()
            self._report(connection)
        return True

    def _report(self, connection: Connection) -> None:
        """Records a tunnel's decision when the tool's end of it ends, not when the server's
        does (which can be much later, or never): the tool's call then finds it as it settles.
        Bytes that still pass after that (to a tool that only half-closed) are recorded when
        the connection ends, as a decision of their own, so none go uncounted."""
        if connection.tunnel is None:
            return
        sent, received = connection.reported or (0, 0)
        if connection.reported is not None and (sent, received) == (connection.sent, connection.received):
            return
        host, port = connection.tunnel
        self.decided(connection.key, host, port, allowed=True, reason=connection.upstream_error,
                     sent=connection.sent - sent, received=connection.received - received,
                     more=connection.reported is not None)
        connection.reported = (connection.sent, connection.received)

    # --- mitmproxy's hooks -------------------------------------------------------------------
    async def http_connect(self, flow: http.HTTPFlow) -> None:
        connection = await self._decide(flow)
        if connection is not None:
            connection.tunnel = (self._shown(flow), flow.request.port)
            run = self.runs[connection.key]
            connection.secrets = run.secrets.get(_canonical(self._shown(flow)), [])
            connection.ca = run.ca if connection.secrets else None

    def terminated(self, client: Any) -> RunCA | None:
        """The run CA a client connection's tunnel is terminated with; None: it passes through."""
        connection = self._connection_of_client(client)
        return connection.ca if connection is not None else None

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        connection = self._connection_of_client(data.context.client)
        if connection is None or connection.ca is None or connection.tunnel is None:
            return
        # The upstream is verified for the name the policy checked, whatever name the tool's
        # TLS asks for (an address as an address: mitmproxy sends no SNI for it).
        data.context.server.sni = connection.tunnel[0]

    def tls_failed_server(self, data: tls.TlsData) -> None:
        connection = self._connection_of_client(data.context.client)
        if connection is not None and connection.ca is not None:
            connection.upstream_error = str(data.conn.error or "the TLS handshake failed")

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT" or flow.response is not None:
            return
        connection = self._connection_of(flow)
        if connection is not None and connection.ca is not None and flow.client_conn.tls_established:
            # Inside a terminated tunnel: the request goes to the address its CONNECT was
            # allowed for (mitmproxy takes it from the tunnel, not from the request), whose
            # certificate is verified.
            if connection.upstream_error:
                self._unverified(flow, connection)
                return
            if not _names(flow.request.host_header, *connection.tunnel or ("", 0)):
                self._misnamed(flow, connection)
                return
            for secret in connection.secrets:  # replacing the tool's own, if it sent one
                flow.request.headers[secret.header] = secret.value
            flow.request.stream = True
            flow.metadata["tether_stream"] = True
            return
        if flow.request.scheme != "http":
            self._refuse(flow, self._key_of(flow), "only http:// requests, or CONNECT for https")
            return
        connection = await self._decide(flow)
        if connection is None:
            return
        counts = flow.metadata["tether"] = {"key": connection.key, "host": self._shown(flow),
                                            "port": flow.request.port, "sent": 0, "received": 0}
        flow.request.stream = _counter(counts, "sent")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("tether_stream") and flow.response is not None:
            flow.response.stream = True
        counts = flow.metadata.get("tether")
        if counts is not None and flow.response is not None:
            flow.response.stream = _counter(counts, "received")

    def response(self, flow: http.HTTPFlow) -> None:
        self._finished(flow, "")

    def error(self, flow: http.HTTPFlow) -> None:
        self._finished(flow, str(flow.error) if flow.error else "failed")

    def _finished(self, flow: http.HTTPFlow, reason: str) -> None:
        counts = flow.metadata.pop("tether", None)
        if counts is not None:
            self.decided(counts["key"], counts["host"], counts["port"], allowed=True, reason=reason,
                         sent=counts["sent"], received=counts["received"])

    def _key_of(self, flow: http.HTTPFlow) -> str:
        connection = self._connection_of(flow)
        return connection.key if connection is not None else ""

    def _connection_of(self, flow: http.HTTPFlow) -> Connection | None:
        return self._connection_of_client(flow.client_conn)

    def _connection_of_client(self, client: Any) -> Connection | None:
        return self.by_client.get(client.id)

    async def _decide(self, flow: http.HTTPFlow) -> Connection | None:
        """The connection's run when the request may go on (to the address that was checked),
        None when it was refused with a 403."""
        connection = self._connection_of(flow)
        if connection is None or connection.key not in self.runs:
            self._refuse(flow, "", "this connection came through no run's socket")
            return None
        host, port = flow.request.host, flow.request.port
        try:
            chosen = await _pin(self.runs[connection.key].policy, host, port)
        except Refused as refused:
            self._refuse(flow, connection.key, str(refused))
            return None
        # The connection goes to the address just checked, not to what a second lookup says
        # (a name that resolves elsewhere the next time, DNS rebinding); the Host header stays.
        host_header = flow.request.host_header
        flow.request.host = chosen
        if flow.request.method != "CONNECT":
            flow.request.host_header = host_header
        flow.metadata["tether_name"] = host
        return connection

    def _shown(self, flow: http.HTTPFlow) -> str:
        return str(flow.metadata.get("tether_name", flow.request.host)).lower()

    def _unverified(self, flow: http.HTTPFlow, connection: Connection) -> None:
        assert connection.tunnel is not None
        host, port = connection.tunnel
        body = (f"tether egress: {host}:{port} could not be verified ({connection.upstream_error});"
                " the proxy adds this run's secret only to a host whose certificate the system's CAs"
                " or the worker's TETHER_EGRESS_CA_FILE sign, and sent it no request\n")
        flow.response = http.Response.make(502, body, {"Content-Type": "text/plain; charset=utf-8",
                                                       "Connection": "close"})

    def _misnamed(self, flow: http.HTTPFlow, connection: Connection) -> None:
        assert connection.tunnel is not None
        host, port = connection.tunnel
        body = (f"tether egress: a request in the tunnel to {host}:{port} names host"
                f" {flow.request.host_header or '(none)'}; this run's secret for {host} goes only"
                f" with requests that name it, so the proxy sent this one nowhere\n")
        flow.response = http.Response.make(403, body, {"Content-Type": "text/plain; charset=utf-8",
                                                       "Connection": "close"})

    def _refuse(self, flow: http.HTTPFlow, key: str, reason: str) -> None:
        host = flow.request.host.lower()
        address = literal(host)
        shown = f"[{address}]" if address is not None and address.version == 6 else host
        destination = f"{shown}:{flow.request.port}"
        body = (f"tether egress: {destination} refused by this run's network allow-list"
                f" (sandbox.network): {reason}\n")
        flow.response = http.Response.make(403, body, {"Content-Type": "text/plain; charset=utf-8",
                                                       "Connection": "close"})
        if key:
            self.decided(key, host, flow.request.port, allowed=False, reason=reason)


class _Counted:
    """A run socket's connection as mitmproxy's handler reads and writes it, counting the bytes
    each way for the decision. Its peer name is a loopback one (mitmproxy's `block` addon wants
    an address); the run is never known by it, only by the handler's client id."""

    PEER = (PROXY_HOST, 0)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 connection: Connection, ended: Callable[[Connection], None], read: bytes) -> None:
        self.pending = read
        """What was read before mitmproxy took the connection: its first read gets it."""
        self.reader = reader
        self.writer = writer
        self.connection = connection
        self.ended = ended
        """Called when the tool's end has sent all it will."""

    async def read(self, n: int = -1) -> bytes:
        data, self.pending = self.pending, b""
        data = data or await self.reader.read(n)
        self.connection.sent += len(data)
        if not data:
            self.ended(self.connection)
        return data

    def write(self, data: bytes) -> None:
        self.connection.received += len(data)
        self.writer.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("peername", "sockname"):
            return self.PEER
        return self.writer.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:  # drain, close, is_closing, write_eof, ...
        return getattr(self.writer, name)


def _names(host_header: str | None, host: str, port: int) -> bool:
    """Whether a request's Host (or :authority) names the tunnel's host: on shared hosting it
    picks the site, and a secret must not reach another one behind the same address."""
    if not host_header:
        return False
    named, _, named_port = host_header.rpartition(":") if not host_header.endswith("]") else (
        host_header, "", "")
    if not named or not named_port.isdigit():
        named, named_port = host_header, ""
    return _canonical(named) == _canonical(host) and named_port in ("", str(port))


def _canonical(host: str) -> str:
    address = literal(host)
    return str(address) if address is not None else host.lower().rstrip(".")


def _secrets(request: dict[str, Any]) -> dict[str, list[Secret]]:
    values = request.get("values", {})
    secrets: dict[str, list[Secret]] = {}
    for entry in request.get("secrets", []):
        value = values.get(entry["env"])
        if not value:
            raise ValueError(f"no value was given for {entry['env']}")
        secrets.setdefault(_canonical(str(entry["host"])), []).append(
            Secret(str(entry["header"]), str(entry.get("prefix", "")) + str(value)))
    return secrets


def _counter(counts: dict[str, Any], name: str) -> Any:
    def count(chunk: bytes) -> bytes:
        counts[name] += len(chunk)
        return chunk
    return count


async def _pin(policy: Policy, host: str, port: int) -> str:
    """The address a request or tunnel to host:port goes to, the one checked; Refused when the
    policy refuses the name or every address it resolves to."""
    policy.check_name(host, port)
    address = literal(host)
    resolved = [str(address)] if address is not None else await _resolve(host, port)
    return policy.pick_address(host, port, resolved)


def _unreachable(connection: Connection) -> bytes:
    assert connection.tunnel is not None
    host, port = connection.tunnel
    body = (f"tether egress: {host}:{port} was allowed but could not be reached"
            f" ({connection.upstream_error})\n").encode()
    return (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


async def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]


def _addons() -> list[Any]:
    """The mitmproxy addons the proxy needs, of its default set: every hook of every request
    is offered to each addon in turn, and the 25 others (playback, rewriting, saving, scripts,
    the onboarding app that would answer mitm.it itself, ...) took most of a request's time
    doing nothing. `block` and `disable_h2c` stay: checks, not features."""
    return [core.Core(), block.Block(), disable_h2c.DisableH2C(), proxyserver.Proxyserver(),
            dns_resolver.DnsResolver(), next_layer.NextLayer(), tlsconfig.TlsConfig()]


async def _serve_control(egress: Egress) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        reply: dict[str, Any] = {"id": request.get("id"), "ok": True}
        try:
            if request["op"] == "open":
                entries = [Entry(str(e["host"]), e.get("port")) for e in request["allow"]]
                owner = request.get("owner")
                reply |= await egress.open(str(request["key"]), str(request["socket"]), entries,
                                           _secrets(request), int(owner) if owner is not None else None)
            elif request["op"] == "close":
                await egress.close(str(request["key"]))
            else:
                # Its answer follows every decision written before it, and those of the
                # connections whose end was read with it: they go first.
                await asyncio.sleep(0)
            egress.emit(reply)
        except (OSError, KeyError, ValueError) as error:
            egress.emit({"id": request.get("id"), "ok": False, "error": str(error)})


async def main(confdir: str, upstream_ca: str | None) -> None:
    egress = Egress()
    opts = options.Options(listen_host=PROXY_HOST, listen_port=0, confdir=confdir)
    # No terminal log: stdout is the control channel.
    proxy = master.Master(opts, with_termlog=False)
    # Ahead of mitmproxy's own addons: it decides which tunnels pass through untouched (all
    # but those to a run's secret hosts: the tool's TLS reaches the host) before they do.
    proxy.addons.add(Interception(egress.terminated))
    proxy.addons.add(*_addons())
    proxy.addons.add(egress)
    # Bodies stream (the addon sets every allowed flow's stream), so a large download is
    # never held whole.
    opts.update(connection_strategy="eager")
    if upstream_ca is not None:
        # A secret host's certificate is checked against these (the system's CAs and
        # TETHER_EGRESS_CA_FILE's), never accepted unverified.
        opts.update(ssl_verify_upstream_trusted_ca=upstream_ca)
    running = asyncio.create_task(proxy.run())
    server = proxy.addons.get("proxyserver")
    while not server.listen_addrs():
        if running.done():
            running.result()
        await asyncio.sleep(0.01)
    egress.proxy_port = server.listen_addrs()[0][1]
    egress.instance = next(iter(server.servers))
    egress.emit({"event": "ready", "port": egress.proxy_port})
    try:
        await _serve_control(egress)
    finally:
        for key in list(egress.runs):
            await egress.close(key)
        proxy.shutdown()
        await running


if __name__ == "__main__":
    # uvloop's event loop (libuv) takes less of each hop than asyncio's own: about 0.5 ms of
    # an HTTPS request through the proxy, and a tenth of a large download's time (BENCHMARKS.md).
    uvloop.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
