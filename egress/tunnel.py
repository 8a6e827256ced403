"""A CONNECT tunnel that passes through untouched, relayed here rather than by mitmproxy.

Most tunnels are a tool's own TLS to an allowed host the proxy adds nothing to. mitmproxy's
layers handled each of their reads and writes as events through its HTTP and TCP layers and
hooks: about a third of what the proxy's path added to a request (the floor, a bare relay
over the same hops, measured in BENCHMARKS.md). A connection whose first request is a plain
`CONNECT host:port` is read here; the proxy decides on it with the same policy check and
address pin and, for a tunnel that passes through, connects and relays it itself. Anything
else (a plain request, a tunnel to a secret host, a refusal, a head this strict reading does
not take) goes to mitmproxy with the bytes read so far, which decides on it afresh.

Standard library only, like `policy.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

HEAD_LIMIT = 16 << 10
"""A CONNECT's head is one line and a few headers; a longer one goes to mitmproxy."""
_REQUEST_LINE = re.compile(
    rb"CONNECT (?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))):"
    rb"(?P<port>[0-9]{1,5}) HTTP/1\.[01]\r\n")
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


async def read_connect(reader: asyncio.StreamReader) -> tuple[bytes, tuple[str, int] | None]:
    """The bytes read and, when they are a whole CONNECT head this reading takes, its target.
    Reads no further than the first chunk unless that chunk starts a CONNECT."""
    head = await reader.read(HEAD_LIMIT)
    if not head.startswith(b"CONNECT "):
        return head, None
    while b"\r\n\r\n" not in head:
        if len(head) >= HEAD_LIMIT:
            return head, None
        more = await reader.read(HEAD_LIMIT - len(head))
        if not more:
            return head, None
        head += more
    end = head.index(b"\r\n\r\n") + 4
    if end != len(head):
        return head, None  # bytes sent before the tunnel was answered: mitmproxy's to judge
    match = _REQUEST_LINE.match(head)
    if match is None:
        return head, None
    port = int(match["port"])
    try:
        # As mitmproxy reads a host (a punycode name as its Unicode one), so the policy and
        # the secret hosts see the same name whichever of the two reads it.
        host = match["v6"].decode("ascii") if match["v6"] else match["host"].decode("idna")
    except UnicodeError:
        return head, None
    return (head, (host, port)) if 0 < port < 65536 else (head, None)


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                count: Callable[[int, int], None], ended: Callable[[], None]) -> None:
    """Both ways until both ends have closed; `count(sent, received)` as bytes pass,
    `ended()` when the tool's end has sent all it will (each way half-closes on its own)."""
    up_reader, up_writer = upstream

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, sent: bool) -> None:
        try:
            while data := await source.read(1 << 16):
                count(len(data), 0) if sent else count(0, len(data))
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            if sent:
                ended()
            with contextlib.suppress(OSError, RuntimeError):
                if sink.can_write_eof() and not sink.is_closing():
                    sink.write_eof()

    try:
        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
    finally:
        up_writer.close()
