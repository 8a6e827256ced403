"""One tool call per activity, executed in the run's sandbox, exactly once per key."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.contracts import Message, ToolCallInput, ToolCallOutput, ToolResult
from tether.contracts.activities import TOOL_CALL
from tether.contracts.caps import cap_result
from tether.sandbox.channel import ChannelClosed
from tether.sandbox.manager import SandboxBroken, SandboxGone, SandboxManager
from tether.store import BlobNotFound, Conversations


class ToolActivities:
    """Runs tool calls in the sandboxes of this worker's engine; results go to the store."""

    def __init__(self, *, conversations: Conversations, sandboxes: SandboxManager) -> None:
        self.conversations = conversations
        self.sandboxes = sandboxes

    @activity.defn(name=TOOL_CALL)
    async def call_tool(self, input: ToolCallInput) -> ToolCallOutput:
        try:
            arguments = self.conversations.full_arguments(input.assistant_ref, input.call)
            result = await self.sandboxes.run_tool(
                input.container_id,
                tool=input.call.name,
                arguments=arguments,
                key=input.idempotency_key,
                timeout_s=input.timeout_seconds,
                limit_bytes=input.output_limit_bytes,
                tick=lambda: activity.heartbeat(input.call.name),
                started_at=input.started_at,
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
        ref = self.conversations.blobs.put(message.model_dump_json(exclude_defaults=True).encode())
        return ToolCallOutput(result=cap_result(result), message_ref=ref)

def render_for_model(result: ToolResult) -> str:
    return result.model_dump_json()
