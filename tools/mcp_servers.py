"""Which HTTP MCP servers a run's tools may reach and which of the worker's variables their
headers may carry: the worker's configuration decides, never the run's input.

A run names a server the worker configured (`TETHER_MCP_SERVERS`: name → url and
`headers_env`); followed from the input, a URL and a header variable would let whoever starts a
workflow send any of the worker's variables anywhere. With `TETHER_ALLOW_INPUT_URLS`, a worker
for local development also reaches a URL the run gives, with no header of its own. A stdio
server runs inside the run's own sandbox, which holds no secret: it is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from tether.contracts.tools import McpServer

SERVERS_SETTING = "TETHER_MCP_SERVERS"
OPT_IN_SETTING = "TETHER_ALLOW_INPUT_URLS"


class McpEndpoint(BaseModel):
    """One entry of `TETHER_MCP_SERVERS`: a streamable-HTTP server the worker reaches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://\S+$")
    headers_env: dict[str, str] = Field(default_factory=dict)
    """Header name → the worker's variable holding its value."""


class McpRefused(ValueError):
    """A run's MCP server gives a URL or header variables this worker did not configure."""


@dataclass(frozen=True)
class McpEndpoints:
    """The worker's MCP servers by name, and whether a run may give a URL of its own."""

    configured: Mapping[str, McpEndpoint] = field(default_factory=dict)
    allow_input_urls: bool = False

    def resolve(self, server: McpServer) -> McpServer:
        """The server as this worker reaches it, or `McpRefused` saying which setting to use."""
        if server.command is not None:
            return server
        endpoint = self.configured.get(server.name)
        if endpoint is not None and agrees(server, endpoint):
            return server.model_copy(update={"url": endpoint.url, "headers_env": dict(endpoint.headers_env)})
        if self.allow_input_urls and server.url is not None and not server.headers_env:
            return server
        raise McpRefused(self._refusal(server, configured=endpoint is not None))

    def _refusal(self, server: McpServer, *, configured: bool) -> str:
        has = ", ".join(sorted(self.configured)) or "none"
        if server.url is None and not server.headers_env:
            return (f"MCP server {server.name!r} is not configured on this worker: add it to "
                    f"{SERVERS_SETTING} there (this worker has: {has})")
        given = " and ".join(part for part in (
            f"url {server.url}" if server.url is not None else "",
            "headers_env" if server.headers_env else "") if part)
        why = (f"MCP server {server.name!r} gives its own {given}"
               f"{', unlike the one configured under that name' if configured else ''}; a run names "
               f"a server configured on the worker: add it to {SERVERS_SETTING} there and give "
               f"only its name (this worker has: {has})")
        if not server.headers_env and not self.allow_input_urls:
            why += f", or, for local development, set {OPT_IN_SETTING}=1 to reach it with no headers"
        return why


def agrees(server: McpServer, endpoint: McpEndpoint) -> bool:
    """Whether what the input says of the URL and headers is what the worker configured."""
    return ((server.url is None or server.url.rstrip("/") == endpoint.url.rstrip("/"))
            and (not server.headers_env or server.headers_env == endpoint.headers_env))
