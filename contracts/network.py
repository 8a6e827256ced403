"""What a run's sandbox may reach: `"none"`, or an allow-list enforced by the runtime's proxy.

A destination is `host[:port]`, `*.suffix[:port]` (any name ending in `.suffix`), an IPv4
address or a bracketed IPv6 one (`[::1]:8080`). Without a port, any port of the host is
allowed. Names are matched as written, lower-cased: the proxy also refuses a name that
resolves to a private, loopback, link-local or metadata address unless that address is
itself on the list.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator
from tether.contracts.messages import Strict

MAX_ALLOWED = 256
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


@dataclass(frozen=True)
class Destination:
    """One allow-list entry, parsed: `host` is a name, an address or a `*.` suffix."""

    host: str
    port: int | None

    @property
    def wildcard(self) -> bool:
        return self.host.startswith("*.")

    def matches(self, host: str, port: int) -> bool:
        """Whether a request for `host:port` (host lower-cased, IPv6 without brackets) fits."""
        if self.port is not None and self.port != port:
            return False
        if self.wildcard:
            return host.endswith(self.host[1:])
        return host == self.host


def parse_destination(entry: str) -> Destination:
    """`host[:port]`, `*.suffix[:port]`, `a.b.c.d[:port]` or `[v6][:port]`; ValueError saying
    what is wrong with any other."""
    text = entry.strip().lower()
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"allow entry {entry!r}: after ']' only ':PORT' may follow")
        host, port_text = _address(entry, address, version=6), rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = text.rpartition(":")
        if not colon:
            host, port_text = text, None
        else:
            port_text = port_text_or_empty
        if ":" in host:
            raise ValueError(f"allow entry {entry!r}: write an IPv6 address in brackets,"
                             " e.g. '[::1]:8080'")
        host = _name_or_address(entry, host)
    return Destination(host=host, port=_port(entry, port_text) if port_text is not None else None)


def _name_or_address(entry: str, host: str) -> str:
    if host.startswith("*."):
        if not _NAME.fullmatch(host[2:]):
            raise ValueError(f"allow entry {entry!r}: '*.' must be followed by a domain name,"
                             " e.g. '*.pythonhosted.org'")
        return host
    if "*" in host:
        raise ValueError(f"allow entry {entry!r}: a wildcard is only allowed as a leading"
                         " '*.' (e.g. '*.example.org'); there is no allow-everything entry")
    if re.fullmatch(r"[0-9.]+", host):
        return _address(entry, host, version=4)
    if not _NAME.fullmatch(host):
        raise ValueError(f"allow entry {entry!r}: {host!r} is not a host name or address")
    return host


def _address(entry: str, host: str, *, version: int) -> str:
    """The address in its one canonical spelling, as the proxy compares it."""
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"allow entry {entry!r}: {host!r} is not an IPv{version} address") from None
    if parsed.version != version:
        raise ValueError(f"allow entry {entry!r}: {host!r} is not an IPv{version} address")
    return str(parsed)


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"allow entry {entry!r}: the port must be a number from 1 to 65535")
    return int(text)


class NetworkPolicy(Strict):
    """`{"allow": [...]}`: the sandbox reaches exactly these destinations, over HTTP and HTTPS,
    through the runtime's proxy, and nothing else."""

    allow: list[str] = Field(max_length=MAX_ALLOWED)
    secrets: list[Any] | None = None
    """Refused for now: secrets added by the proxy are not available yet (issue 20, part 2)."""

    @field_validator("allow")
    @classmethod
    def _entries_parse(cls, allow: list[str]) -> list[str]:
        if not allow:
            raise ValueError('an empty allow-list reaches nothing: write "network": "none"')
        for entry in allow:
            parse_destination(entry)
        return allow

    @field_validator("secrets")
    @classmethod
    def _no_secrets_yet(cls, secrets: list[Any] | None) -> list[Any] | None:
        if secrets is not None:
            raise ValueError("brokered secrets are not available yet: drop \"secrets\" from"
                             " \"network\" (tools get no credentials through the proxy)")
        return secrets

    def destinations(self) -> list[Destination]:
        return [parse_destination(entry) for entry in self.allow]
