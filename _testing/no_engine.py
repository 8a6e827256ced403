"""What a test environment without a Docker engine answers a run that needs a sandbox: one
line, at once. Without these stand-ins, the run's sandbox request would wait on the queue
for a sandbox host that never comes."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.contracts import AcquireInput, SandboxHandle
from tether.contracts.activities import ACQUIRE_SANDBOX, MCP_LIST_TOOLS
from tether.contracts.tools import McpListInput, McpListOutput


class NoEngine:
    """Registered under the names of the activities that need an engine, on a test worker
    that has none; never on a worker that has one."""

    def __init__(self, why: str) -> None:
        self.message = (
            f"this TetherTestEnvironment has no Docker engine ({why}): a run that uses a "
            "sandbox tool (python, shell, read_file, write_file) or MCP servers needs one; "
            "start Docker or set DOCKER_HOST, or give the run function tools only")

    def activities(self) -> list[Callable[..., object]]:
        return [self.acquire_sandbox, self.list_mcp_tools]

    @activity.defn(name=ACQUIRE_SANDBOX)
    async def acquire_sandbox(self, input: AcquireInput) -> SandboxHandle:
        raise ApplicationError(self.message, type="NoDockerEngine", non_retryable=True)

    @activity.defn(name=MCP_LIST_TOOLS)
    async def list_mcp_tools(self, input: McpListInput) -> McpListOutput:
        raise ApplicationError(self.message, type="NoDockerEngine", non_retryable=True)
