"""MCP servers through the official `mcp` SDK: a session over any transport, a server's tools
as tether tool specs, and one tool call as a tool result."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx2
import mcp_types as types
from mcp import ClientSession
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client
from tether.contracts import ToolResult, ToolSpec
from tether.contracts.tools import MCP_SEPARATOR, McpServer

HTTP_TIMEOUT_S = 60.0


class McpUnavailable(RuntimeError):
    """A server can't be reached or started, or is configured with a missing secret."""


def tool_name(server: str, remote: str) -> str:
    return f"{server}{MCP_SEPARATOR}{remote}"


def http_transport(
    server: McpServer, env: Mapping[str, str],
) -> AbstractAsyncContextManager[TransportStreams]:
    """The streamable-HTTP transport to `server` as the worker configured it, its headers'
    values read from `env` (the worker's environment) by the variable names configured."""
    missing = [variable for variable in server.headers_env.values() if not env.get(variable)]
    if missing:
        raise McpUnavailable(
            f"MCP server {server.name!r} needs ${', $'.join(missing)} set on the worker")
    headers = {header: env[variable] for header, variable in server.headers_env.items()}
    url = server.url
    assert url is not None

    @asynccontextmanager
    async def transport() -> AsyncIterator[TransportStreams]:
        async with (httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT_S) as http,
                    streamable_http_client(url, http_client=http) as streams):
            yield streams

    return transport()


@asynccontextmanager
async def session(transport: AbstractAsyncContextManager[TransportStreams]) -> AsyncIterator[ClientSession]:
    async with transport as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


async def list_tools(client: ClientSession, server: McpServer) -> list[ToolSpec]:
    """The server's tools (those the run chose), as the model will be told of them."""
    found: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
        found += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    chosen = [t for t in found if server.tools is None or t.name in server.tools]
    if server.tools is not None:
        unknown = sorted(set(server.tools) - {t.name for t in chosen})
        if unknown:
            raise McpUnavailable(
                f"MCP server {server.name!r} has no tool {', '.join(map(repr, unknown))}; "
                f"it has: {', '.join(t.name for t in found)}")
    return [ToolSpec(name=tool_name(server.name, t.name), description=t.description or t.name,
                     parameters=t.input_schema, kind="mcp", server=server.name, remote_name=t.name)
            for t in chosen]


async def call_tool(client: ClientSession, remote_name: str, arguments: dict) -> ToolResult:
    """One call; an MCP error result is the tool's error, told to the model."""
    result = await client.call_tool(remote_name, arguments)
    if not isinstance(result, types.CallToolResult):
        answered = type(result).__name__
        return ToolResult(exit_code=1, stderr=f"the server answered {answered}, not a tool result")
    texts = []
    for block in result.content:
        texts.append(block.text if isinstance(block, types.TextContent) else block.model_dump_json())
    if result.structured_content is not None and not texts:
        texts.append(json.dumps(result.structured_content))
    output = "\n".join(texts)
    if result.is_error:
        return ToolResult(exit_code=1, stderr=output)
    return ToolResult(exit_code=0, stdout=output)
