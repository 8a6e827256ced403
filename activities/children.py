"""Waiting on a sub-agent the parent did not start itself: one it found already started
under its id (a parent reset past the start, say). A workflow can't wait on another's result
but through its own child's handle, so this activity does, through the worker's client."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tether.contracts import AgentRunResult
from tether.contracts.agents import AWAIT_CHILD, AwaitChildInput

HEARTBEAT_EVERY_S = 5.0


@activity.defn(name=AWAIT_CHILD)
async def await_child(input: AwaitChildInput) -> AgentRunResult:
    """The sub-agent's result once it ends; heartbeats while it runs, so a worker that dies
    waiting is noticed and another waits instead."""
    handle = activity.client().get_workflow_handle(input.workflow_id, result_type=AgentRunResult)
    result = asyncio.ensure_future(handle.result())
    try:
        while not result.done():
            activity.heartbeat()
            await asyncio.wait({result}, timeout=HEARTBEAT_EVERY_S)
        return result.result()
    except WorkflowFailureError as failure:
        cause: BaseException = failure
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise ApplicationError(f"the sub-agent {input.workflow_id} ended without a result: {cause}",
                               type="ChildFailed", non_retryable=True) from None
    finally:
        result.cancel()
