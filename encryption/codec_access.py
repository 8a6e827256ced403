"""Who the codec server decrypts for: the checks every request passes before its body is read.

- **Host.** A request must name the server by one of its own names (`localhost`,
  `127.0.0.1`, `::1`, the address it listens on, and `--allow-host` names). A web page that
  points a name of its own at 127.0.0.1 (DNS rebinding) sends that name, and is refused.
- **Origin.** A browser request from a page other than the configured Web UI is refused,
  even one the browser sends without a preflight; preflights are answered for the UI's
  origins only, never `*`.
- **Token.** With a token set, a request carries `Authorization: Bearer TOKEN` (what
  `temporal --codec-auth "Bearer TOKEN"` sends), or the token as the endpoint's first path
  segment (`http://host:8081/TOKEN`): the Web UI adds no header of its own, so `tether dev`
  and `tether server` put the token in the endpoint they give it. Compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN = re.compile(r"^[A-Za-z0-9._~-]{16,}$")
"""Letters, digits and `._~-`: a token travels in a URL path for the Web UI."""
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class AccessRefused(Exception):
    """The codec server can't start with these options; the message says what to change."""


def check_token(token: str, *, named: str) -> str:
    if not TOKEN.match(token):
        raise AccessRefused(
            f"{named} must be at least 16 characters of letters, digits, '.', '_', '~' or '-' "
            "(it may travel in a URL); make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    token: str | None
    hosts: frozenset[str]
    """Lower-case names a request's Host may give, with any port."""
    origins: tuple[str, ...]

    @classmethod
    def of(cls, *, token: str | None, listen: str, allow_hosts: Iterable[str],
           cors_origins: Iterable[str]) -> Access:
        origins = tuple(cors_origins)
        if any("*" in origin for origin in origins):
            raise AccessRefused("a CORS origin of '*' would let any web page decrypt through "
                                "the codec server: name the Web UI's origin, as http://localhost:8233")
        if token is None and not is_loopback(listen):
            raise AccessRefused(
                f"the codec server would listen on {listen} with no token, so anyone who reaches "
                "it could decrypt: set TETHER_CODEC_TOKEN (or --token-env NAME), or listen on "
                "127.0.0.1")
        hosts = {*LOOPBACK_NAMES, *(h.strip().lower() for h in allow_hosts if h.strip())}
        if listen not in ("0.0.0.0", "::"):
            hosts.add(listen.strip("[]").lower())
        return cls(token, frozenset(hosts), origins)

    def host_allowed(self, header: str | None) -> bool:
        if not header:
            return False
        name = header.strip().lower()
        if name.startswith("["):
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:
            name = name.partition(":")[0]
        return name in self.hosts

    def origin_allowed(self, origin: str | None) -> bool:
        """A request without an Origin is not a browser's cross-origin one."""
        return origin is None or origin in self.origins

    def token_given(self, headers: Headers, path_token: str | None) -> bool:
        if self.token is None:
            return path_token is None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if path_token is not None:
            given = path_token
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())


class HostGuard:
    """Refuses, before anything else (CORS preflights included), a request whose Host is not
    one of the server's names."""

    def __init__(self, app: ASGIApp, *, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.access.host_allowed(Headers(scope=scope).get("host")):
            refused = JSONResponse(
                {"error": "the request's Host is not a name this codec server answers to; "
                          "start it with --allow-host NAME for a name of its own"},
                status_code=403)
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)
