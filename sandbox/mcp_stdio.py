"""An MCP stdio server inside a run's sandbox, as a transport for the `mcp` SDK's session.

The server is a process the sandbox's executor starts (`mcp_open`) and feeds one JSON-RPC
line at a time (`mcp_send`), answering with what the server wrote until the response to a
request came; `mcp_close` ends it. A third-party server so gets the sandbox's isolation: no
network, no host files, the run's limits. One server process per session, named by the
caller after what it serves (a call's idempotency key, the run's listing): two calls at once
to the same server each get their own process, and a retried attempt replaces the session its
crashed predecessor abandoned, never resumes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage
from tether.sandbox.channel import ChannelCorrupt
from tether.sandbox.manager import SandboxBroken, SandboxManager, corrupted

ANSWER_GRACE_S = 5.0
IDLE_GRACE_S = 60.0


@asynccontextmanager
async def sandbox_stdio(
    sandboxes: SandboxManager, container_id: str, *, name: str, session: str, command: list[str],
    timeout_s: float, started_at: str | None = None,
) -> AsyncIterator[TransportStreams]:
    """`session` names this use of the server `name`, unique to it in the sandbox.
    `started_at`, when the run's handle recorded it: a container started since (its engine
    restarted it) is lost, as it is to a tool call, not taken for the run's sandbox."""

    async def ask(message: dict[str, Any], wait: float = ANSWER_GRACE_S) -> dict[str, Any]:
        await asyncio.to_thread(sandboxes.find, container_id, started_at)  # a lost sandbox says so
        stream = await asyncio.to_thread(sandboxes.channel, container_id)
        try:
            response = await asyncio.wait_for(asyncio.wrap_future(stream.request(message)), wait)
        except ChannelCorrupt as error:
            raise corrupted(container_id, error) from None
        if not response.get("ok"):
            raise SandboxBroken(f"MCP server {name!r} in the sandbox: {response.get('error')}")
        return dict(response.get("result") or {})

    # Between this session's own exchanges nothing waits long: a session unused for a call's
    # timeout and a minute more was left by a host that died, and the executor closes it.
    await ask({"op": "mcp_open", "name": name, "session": session, "argv": command,
               "idle_seconds": timeout_s + IDLE_GRACE_S})
    read_in, read_out = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_in, write_out = anyio.create_memory_object_stream[SessionMessage](16)

    async def relay() -> None:
        async with read_in, write_out:
            async for outgoing in write_out:
                raw = outgoing.message.model_dump_json(by_alias=True, exclude_unset=True)
                data = json.loads(raw)
                # Only a request waits for its answer; notifications and our responses to the
                # server's own requests don't.
                expect = data.get("id") if "method" in data and "id" in data else None
                answer = await ask({"op": "mcp_send", "name": name, "session": session, "line": raw,
                                    "expect": expect, "timeout": timeout_s},
                                   wait=timeout_s + ANSWER_GRACE_S)
                for line in answer.get("lines", []):
                    await read_in.send(_parse(line))

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(relay)
            try:
                yield read_out, write_in
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            try:
                await ask({"op": "mcp_close", "name": name, "session": session})
            except Exception:
                pass  # the sandbox is gone: so is its server


def _parse(line: str) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as error:
        return error
