"""The listing of a run's MCP servers at its start: bound to the sandbox it was given, and
taken again in a new one when that sandbox is lost before it. Stand-in activities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from tether.contracts import AcquireInput, SandboxHandle
from tether.contracts.activities import ACQUIRE_SANDBOX, MCP_LIST_TOOLS
from tether.contracts.tools import McpListInput, McpListOutput

from tests.workflows.fast.standins import StandIns, serving, start, status, turn

TIME_SERVER = {"name": "time", "command": ["mcp-server-time"], "where": "sandbox"}


class ListingStandIns(StandIns):
    """Sandboxes that record when they started, and a listing that finds the ones in `lost`
    gone, as the real one does a container its engine restarted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listings: list[McpListInput] = []

    def activities(self) -> list[Callable[..., Any]]:
        return [*super().activities(), self.list_mcp_tools]

    @activity.defn(name=ACQUIRE_SANDBOX)
    async def acquire_sandbox(self, input: AcquireInput) -> SandboxHandle:
        handle = await super().acquire_sandbox(input)
        return handle.model_copy(update={"started_at": f"started-{len(self.acquired)}"})

    @activity.defn(name=MCP_LIST_TOOLS)
    async def list_mcp_tools(self, input: McpListInput) -> McpListOutput:
        self.listings.append(input)
        if input.container_id in self.lost:
            raise ApplicationError(f"sandbox {input.container_id} was restarted by its engine",
                                   type="SandboxGone", non_retryable=True)
        return McpListOutput(toolset=f"toolset-of-{input.container_id}", routes={})


async def test_a_sandbox_lost_before_the_listing_is_replaced_and_the_listing_taken_again(
    fast_client: Client,
):
    fakes = ListingStandIns(turn("listed"), lost=("box-1",))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, tools=[], mcp_servers=[TIME_SERVER])
        result = await handle.result()
        final = await status(handle)

    assert (result.status, result.output) == ("completed", "listed")
    assert [(listing.container_id, listing.started_at) for listing in fakes.listings] == [
        ("box-1", "started-1"), ("box-2", "started-2")]
    assert fakes.model_calls[0].toolset == "toolset-of-box-2"
    assert final.last_error is not None and "box-1 was restarted by its engine" in final.last_error
    assert fakes.released == ["box-1", "box-2"]
