"""Containers and tool calls made straight through `sandbox.manager`, with no run or worker
in between."""

from __future__ import annotations

import os
import uuid

from tether.contracts import ToolResult
from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER

from tests.helpers import sandboxes

DIRECT_WORKER = f"{os.environ['TETHER_WORKER_ID']}-direct"
"""The worker label of containers the tests make themselves: the suite worker's reaper
never judges them, and the `no_direct_leftovers` fixture removes any a test forgot."""


def direct_labels() -> dict[str, str]:
    return {LABEL_MANAGED: "1", LABEL_WORKER: DIRECT_WORKER}


async def call(container_id: str, command: str, *, key: str | None = None, timeout: float = 10,
               tool: str = "shell", limit: int = 4096) -> ToolResult:
    arguments = {"command": command} if tool == "shell" else {"code": command}
    return await sandboxes().run_tool(container_id, tool=tool, arguments=arguments,
                          key=key or uuid.uuid4().hex, timeout_s=timeout, limit_bytes=limit)


async def file_call(container_id: str, tool: str, **arguments: str) -> ToolResult:
    return await sandboxes().run_tool(container_id, tool=tool, arguments=arguments, key=uuid.uuid4().hex,
                          timeout_s=10, limit_bytes=64)


async def running_commands(container_id: str) -> list[str]:
    names = await call(container_id, "cat /proc/[0-9]*/comm")
    return names.stdout.split()
