"""What the `delegate` tool needs outside the workflow: a call's whole arguments, when
history holds them cut; its result stored as a tool message; and waiting on a sub-agent the
parent did not start itself (one it found already started under its id, a parent reset past
the start, say). A workflow can wait on another's result only through its own child's
handle, so the last does, through the worker's client."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tether.activities.store_errors import store_failure
from tether.contracts import AgentRunResult, Message
from tether.contracts.agents import (
    AWAIT_CHILD,
    DELEGATE_ARGUMENTS,
    STORE_TOOL_MESSAGE,
    AwaitChildInput,
    DelegateArgumentsInput,
)
from tether.store import Conversations, StoreError

HEARTBEAT_EVERY_S = 5.0


class ChildActivities:
    def __init__(self, *, conversations: Conversations) -> None:
        self.conversations = conversations

    @activity.defn(name=DELEGATE_ARGUMENTS)
    async def delegate_arguments(self, input: DelegateArgumentsInput) -> dict[str, Any]:
        """The call's whole arguments, from the model's message in the store."""
        try:
            return await self.conversations.full_arguments_async(input.assistant_ref, input.call)
        except StoreError as error:
            raise store_failure(error) from None

    @activity.defn(name=STORE_TOOL_MESSAGE)
    async def store_tool_message(self, message: Message) -> str:
        """The message's digest, once stored (a local activity: its input is not in history)."""
        try:
            return await self.conversations.blobs.put_async(
                message.model_dump_json(exclude_defaults=True).encode())
        except StoreError as error:
            raise store_failure(error) from None

    @activity.defn(name=AWAIT_CHILD)
    async def await_child(self, input: AwaitChildInput) -> AgentRunResult:
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
