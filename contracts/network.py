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

from pydantic import Field, field_validator, model_validator
from tether.contracts.messages import Strict

MAX_ALLOWED = 256
MAX_SECRETS = 16
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
FRAMING_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade",
                             "te", "trailer", "keep-alive", "proxy-connection"})
"""Headers that say how a request is framed or routed: a secret may not stand in for them."""
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


class BrokeredSecret(Strict):
    """`{"host", "header", "env", "prefix"?}`: the proxy adds `header: prefix + value` to every
    HTTPS request for `host`, the value read on the worker from the variable `env`, which the
    worker must list in TETHER_BROKERED_ENV. The run names the variable, never the value."""

    host: str = Field(max_length=253)
    """A host name or an address, as in `allow` but without a port or a wildcard."""
    header: str
    env: str
    prefix: str = Field(default="", max_length=64)
    """Put before the value, e.g. `"Bearer "`."""

    @field_validator("host")
    @classmethod
    def _one_host(cls, host: str) -> str:
        destination = parse_destination(host)
        if destination.port is not None or destination.wildcard:
            raise ValueError(f"secret host {host!r}: one host name or address, without a port or"
                             " a '*.' (the secret goes to that host on any port the allow-list"
                             " gives it)")
        return destination.host

    @field_validator("header")
    @classmethod
    def _header_name(cls, header: str) -> str:
        if not _HEADER.fullmatch(header):
            raise ValueError(f"secret header {header!r} is not an HTTP header name")
        if header.lower() in FRAMING_HEADERS or header.lower().startswith("proxy-"):
            raise ValueError(f"secret header {header!r} frames or routes the request: name one"
                             " that carries a credential, e.g. Authorization")
        return header

    @field_validator("env")
    @classmethod
    def _variable_name(cls, env: str) -> str:
        if not _ENV.fullmatch(env):
            raise ValueError(f"secret env {env!r} is not an environment variable's name")
        return env

    @field_validator("prefix")
    @classmethod
    def _printable_prefix(cls, prefix: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
            raise ValueError("secret prefix: no control characters (a line break would end the header)")
        return prefix


class NetworkPolicy(Strict):
    """`{"allow": [...]}`: the sandbox reaches exactly these destinations, over HTTP and HTTPS,
    through the runtime's proxy, and nothing else."""

    allow: list[str] = Field(max_length=MAX_ALLOWED)
    secrets: list[BrokeredSecret] | None = Field(default=None, max_length=MAX_SECRETS)
    """Credentials the proxy adds to requests for their hosts (see `BrokeredSecret`)."""

    @field_validator("allow")
    @classmethod
    def _entries_parse(cls, allow: list[str]) -> list[str]:
        if not allow:
            raise ValueError('an empty allow-list reaches nothing: write "network": "none"')
        for entry in allow:
            parse_destination(entry)
        return allow

    @model_validator(mode="after")
    def _secret_hosts_allowed(self) -> NetworkPolicy:
        destinations = self.destinations()
        seen = set()
        for secret in self.secrets or []:
            if not any(d.matches(secret.host, d.port or 0) for d in destinations):
                raise ValueError(f"secret host {secret.host!r} is not on the allow-list: add it to"
                                 " \"allow\" as well")
            if (secret.host, secret.header.lower()) in seen:
                raise ValueError(f"two secrets for {secret.host!r}'s {secret.header} header: keep one")
            seen.add((secret.host, secret.header.lower()))
        return self

    def destinations(self) -> list[Destination]:
        return [parse_destination(entry) for entry in self.allow]

    def brokered(self) -> list[str]:
        """The worker variables the run's secrets name, each once."""
        return list(dict.fromkeys(secret.env for secret in self.secrets or []))
