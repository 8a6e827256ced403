"""A DNS server the test controls, and an egress proxy that asks it, for the resolution tests.

The proxy resolves names with the C library, which reads the nameserver from
/etc/resolv.conf and asks it on port 53. So the server listens on port 53 of an address of
its own on the host's loopback (127.0.0.0/8 is all loopback), and the proxy runs in a mount
namespace of its own (`unshare --mount`, as root) where /etc/resolv.conf names that server:
the host's resolver, and every other process's, is untouched.

The server answers A queries from a schedule per name: the first query gets the first list
of addresses, the second the second, and so on (the last one repeats), which is what a
rebinding name does. AAAA queries get no address; any other name is NXDOMAIN.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections import defaultdict
from pathlib import Path

A, IN = 1, 1
NXDOMAIN = 3


class DnsServer:
    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = {name.lower(): schedule for name, schedule in answers.items()}
        self.asked: dict[str, int] = defaultdict(int)
        """How many A queries each name got."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):  # an address of its own: another test may hold port 53 of one
            self.address = "127." + ".".join(str(random.randrange(2, 255)) for _ in range(3))
            try:
                self.sock.bind((self.address, 53))
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free port 53 on the host's loopback for the test's DNS server")
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DnsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                query, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            answer = self.answer(query)
            if answer is not None:
                self.sock.sendto(answer, peer)

    def answer(self, query: bytes) -> bytes | None:
        if len(query) < 12:
            return None
        ident, flags = struct.unpack("!HH", query[:4])
        labels, at = [], 12
        while at < len(query) and query[at]:
            labels.append(query[at + 1:at + 1 + query[at]].decode("ascii", "replace"))
            at += 1 + query[at]
        end = at + 5  # the root label, then type and class
        if end > len(query):
            return None
        qtype = struct.unpack("!H", query[at + 1:at + 3])[0]
        name = ".".join(labels).lower()
        schedule = self.answers.get(name)
        records = b""
        count = 0
        if schedule is not None and qtype == A:
            addresses = schedule[min(self.asked[name], len(schedule) - 1)]
            self.asked[name] += 1
            for address in addresses:
                # The name by a pointer to the question's; TTL 0, so nothing caches it.
                records += struct.pack("!HHHIH", 0xC00C, A, IN, 0, 4) + socket.inet_aton(address)
                count += 1
        rcode = NXDOMAIN if schedule is None else 0
        header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100) | rcode, 1, count, 0, 0)
        return header + query[12:end] + records


def resolving_with(server: DnsServer, python: str, directory: Path) -> str:
    """An interpreter command (as `EgressProxy(python=...)` takes one) that runs `python` in
    a mount namespace whose /etc/resolv.conf names `server` alone."""
    resolv = directory / "resolv.conf"
    resolv.write_text(f"nameserver {server.address}\noptions attempts:1 timeout:2\n")
    wrapper = directory / "python-resolving-with-test-dns"
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare --mount --propagation private sh -c"
        " 'mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"'"
        f" '{resolv}' '{python}' \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)
