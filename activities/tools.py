"""One tool call per activity, executed in the run's sandbox, exactly once per key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from llm.messages import Message
from sandbox.channel import ChannelClosed
from sandbox.manager import SandboxBroken, SandboxGone, run_tool
from store import default_store
from store.content import BlobNotFound
from store.conversation import load_node_message
from workflows.state import cap_result
from workflows.types import ToolCall, ToolResult


class ToolCallInput(BaseModel):
    workflow_id: str
    step: int
    index: int
    call: ToolCall
    """As history holds it: long arguments capped."""
    assistant_ref: str | None = None
    """The stored conversation node of the assistant message that asked for the call: the
    full arguments are read from it, so they are not in history twice."""
    container_id: str
    timeout_seconds: float
    output_limit_bytes: int

    @property
    def idempotency_key(self) -> str:
        """Stable across retries, workers and continue-as-new: the same call, the same key."""
        return f"{self.workflow_id}/{self.step}/{self.index}"


class ToolCallOutput(BaseModel):
    result: ToolResult
    """Capped: this goes into the event history and the transcript."""
    message_ref: str
    """The tool's whole result (up to the sandbox's output limit) as a stored conversation
    message, for the next model call: the model reads it all, the history holds a digest."""


@activity.defn(name="tool_call")
async def call_tool(input: ToolCallInput) -> ToolCallOutput:
    try:
        arguments = full_arguments(input)
        result = await run_tool(
            input.container_id,
            tool=input.call.name,
            arguments=arguments,
            key=input.idempotency_key,
            timeout_s=input.timeout_seconds,
            limit_bytes=input.output_limit_bytes,
            tick=lambda: activity.heartbeat(input.call.name),
        )
    except SandboxGone as error:
        raise ApplicationError(str(error), type="SandboxGone", non_retryable=True) from None
    except SandboxBroken as error:
        raise ApplicationError(str(error), type="SandboxBroken", non_retryable=True) from None
    except BlobNotFound as error:
        raise ApplicationError(str(error), type="StoreMissing", non_retryable=True) from None
    except ChannelClosed as error:
        # Retryable: the next attempt reattaches, and the executor's ledger answers for a
        # call that already finished.
        raise ApplicationError(str(error), type="SandboxStreamLost") from None
    message = Message(
        role="tool", name=input.call.name, tool_call_id=input.call.id,
        content=render_for_model(result),
    )
    ref = default_store().put(message.model_dump_json(exclude_defaults=True).encode())
    return ToolCallOutput(result=cap_result(result), message_ref=ref)


def full_arguments(input: ToolCallInput) -> dict[str, Any]:
    if input.assistant_ref is None:
        return input.call.arguments
    message = load_node_message(default_store(), input.assistant_ref)
    for call in message.tool_calls:
        if call.id == input.call.id and call.name == input.call.name:
            return call.arguments
    raise ApplicationError(
        f"call {input.call.id} is not in the stored message {input.assistant_ref[:12]}",
        type="StoreMissing", non_retryable=True)


def render_for_model(result: ToolResult) -> str:
    return result.model_dump_json()
