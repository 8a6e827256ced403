"""One run's allow-list, as the proxy applies it: by name first, then by every resolved address.

Standard library only: the proxy process imports it beside mitmproxy, in an environment of its
own (see `egress/__init__.py`), where tether's dependencies are not installed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Entry:
    host: str
    """A lower-case name, `*.suffix`, or an address in `ipaddress`'s spelling."""
    port: int | None


class Refused(Exception):
    """Why a destination is refused, in words a tool's user can act on."""


def literal(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Policy:
    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    def check_name(self, host: str, port: int) -> None:
        """Refused unless an entry names the host (or its address, for a raw address)."""
        host = host.lower().rstrip(".")
        address = literal(host)
        for entry in self.entries:
            if entry.port is not None and entry.port != port:
                continue
            if address is not None:
                if literal(entry.host) == address:
                    return
            elif entry.host == host or (entry.host.startswith("*.") and host.endswith(entry.host[1:])):
                return
        raise Refused("not on the allow-list")

    def pick_address(self, host: str, port: int, resolved: list[str]) -> str:
        """The first resolved address the policy lets the proxy connect to. A name may only
        lead to an address that is not on the public internet (loopback, private, link-local,
        the cloud metadata service, ...) when that address itself is on the list."""
        seen = []
        for text in resolved:
            address = literal(text)
            if address is None:
                continue
            if address.is_global or self._lists_address(address, port):
                return str(address)
            seen.append(str(address))
        if not seen:
            raise Refused("the name does not resolve")
        raise Refused(f"it resolves to {', '.join(seen)}, not a public address and not on the"
                      " allow-list")

    def _lists_address(self, address: Address, port: int) -> bool:
        return any(literal(entry.host) == address and entry.port in (None, port)
                   for entry in self.entries)
