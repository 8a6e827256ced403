"""MCP servers' tools: listed once when a run starts, then one call per activity; a server
that runs in the sandbox is reached on the worker that holds it, an HTTP one from any."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

from mcp.client._transport import TransportStreams
from pydantic import TypeAdapter
from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.activities.store_errors import store_failure
from tether.contracts import Message, ToolCallOutput, ToolResult, ToolSpec
from tether.contracts.activities import MCP_CALL, MCP_LIST_TOOLS
from tether.contracts.caps import cap_result
from tether.contracts.tools import McpCallInput, McpListInput, McpListOutput, McpServer
from tether.sandbox.manager import SandboxGone, SandboxManager
from tether.sandbox.mcp_stdio import sandbox_stdio
from tether.store import Conversations, StoreError
from tether.tools.mcp_client import McpUnavailable, call_tool, http_transport, list_tools, session
from tether.tools.mcp_servers import McpEndpoints, McpRefused

LIST_TIMEOUT_S = 60.0
TOOLSET = TypeAdapter(list[ToolSpec])


class McpActivities:
    """`sandboxes` is this host's engine (None on a worker without one: HTTP servers only);
    `servers` the HTTP servers this worker reaches (`TETHER_MCP_SERVERS`); `environment` holds
    the values of the header variables they name."""

    def __init__(self, *, conversations: Conversations, sandboxes: SandboxManager | None,
                 servers: McpEndpoints | None = None,
                 environment: Mapping[str, str] = os.environ) -> None:
        self.conversations = conversations
        self.sandboxes = sandboxes
        self.servers = servers or McpEndpoints()
        self.environment = environment

    @activity.defn(name=MCP_LIST_TOOLS)
    async def list_tools(self, input: McpListInput) -> McpListOutput:
        try:
            specs = TOOLSET.validate_json(await self.conversations.blobs.get_async(input.toolset))
        except StoreError as error:
            raise store_failure(error) from None
        try:
            for server in input.servers:
                # A session of its own: a retried listing replaces the one its predecessor left.
                transport = self._transport(server, input.container_id, LIST_TIMEOUT_S,
                                            session=f"{server.name}/list", started_at=input.started_at)
                async with session(transport) as client:
                    specs += await list_tools(client, server)
        except Exception as error:
            raise _activity_error(_leaf(error)) from None
        names = [spec.name for spec in specs]
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise ApplicationError(f"two tools are named {', '.join(clashes)}", type="McpUnavailable",
                                   non_retryable=True)
        stored = TOOLSET.dump_json(specs, exclude_defaults=True)
        try:
            toolset = await self.conversations.blobs.put_async(stored)
        except StoreError as error:
            raise store_failure(error) from None
        return McpListOutput(toolset=toolset, routes={spec.name: spec.route() for spec in specs})

    @activity.defn(name=MCP_CALL)
    async def call(self, input: McpCallInput) -> ToolCallOutput:
        try:
            arguments = await self.conversations.full_arguments_async(input.assistant_ref, input.call)
        except StoreError as error:
            raise store_failure(error) from None
        # The call's key names its session: a retried attempt replaces the server its crashed
        # predecessor left, and two calls at once never share one.
        transport = self._transport(input.server, input.container_id, input.timeout_seconds,
                                    session=f"{input.server.name}/{input.idempotency_key}",
                                    started_at=input.started_at)
        try:
            async with session(transport) as client:
                result = await call_tool(client, input.remote_name, arguments)
        except Exception as error:
            leaf = _leaf(error)
            if isinstance(leaf, SandboxGone | McpUnavailable):
                raise _activity_error(leaf) from None
            # What the server or its transport said: the model reads it as the tool's error.
            result = ToolResult(exit_code=1, stderr=f"MCP server {input.server.name!r}: {_reason(leaf)}")
        message = Message(role="tool", name=input.call.name, tool_call_id=input.call.id,
                          content=result.model_dump_json())
        stored = message.model_dump_json(exclude_defaults=True).encode()
        try:
            ref = await self.conversations.blobs.put_async(stored)
        except StoreError as error:
            raise store_failure(error) from None
        return ToolCallOutput(result=cap_result(result), message_ref=ref)

    def _transport(self, server: McpServer, container_id: str | None, timeout_s: float, *,
                   session: str, started_at: str | None = None,
                   ) -> AbstractAsyncContextManager[TransportStreams]:
        try:
            # Checked at every request, not only at the run's start: a worker configured
            # unlike the one that started the run reaches nothing it did not configure.
            server = self.servers.resolve(server)
        except McpRefused as refused:
            raise ApplicationError(str(refused), type="InvalidInput", non_retryable=True) from None
        if server.url is not None:
            try:
                return http_transport(server, self.environment)
            except McpUnavailable as error:
                raise _activity_error(error) from None
        if self.sandboxes is None or container_id is None or server.command is None:
            raise ApplicationError(f"MCP server {server.name!r} runs in a sandbox, and this worker has none",
                                   type="McpUnavailable", non_retryable=True)
        return sandbox_stdio(self.sandboxes, container_id, name=server.name, session=session,
                             command=server.command, timeout_s=timeout_s, started_at=started_at)


def _activity_error(error: BaseException) -> ApplicationError:
    """A lost sandbox as the workflow reads one, a misconfigured server as final, and anything
    else (a server not up yet, a dropped connection) as worth another attempt."""
    if isinstance(error, ApplicationError):
        return error  # classified where it was raised
    if isinstance(error, SandboxGone):
        return ApplicationError(str(error), type="SandboxGone", non_retryable=True)
    if isinstance(error, McpUnavailable):
        return ApplicationError(str(error), type="McpUnavailable", non_retryable=True)
    return ApplicationError(_reason(error), type="McpError")


def _leaf(error: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
