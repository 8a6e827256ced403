"""One call of a function tool per activity, on any worker that has the tool, in that
worker's environment: its credentials stay there; history sees arguments and results."""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.activities.store_errors import store_failure
from tether.contracts import Message, ToolCallOutput, ToolResult
from tether.contracts.activities import FUNCTION_CALL
from tether.contracts.caps import cap_result
from tether.contracts.tools import FunctionCallInput
from tether.store import Conversations, StoreError
from tether.tools import FunctionTools, ToolContext
from tether.tools.registry import InvalidArguments

INVALID_ARGUMENTS_EXIT = 2
FAILED_EXIT = 1


class FunctionActivities:
    def __init__(self, *, tools: FunctionTools, conversations: Conversations) -> None:
        self.tools = tools
        self.conversations = conversations

    @activity.defn(name=FUNCTION_CALL)
    async def call_function(self, input: FunctionCallInput) -> ToolCallOutput:
        tool = self.tools.get(input.call.name)
        if tool is None:
            # The run was started on a worker that had it; this one doesn't.
            has = ", ".join(self.tools.names()) or "none"
            raise ApplicationError(
                f"this worker has no tool {input.call.name!r} (it has: {has}); every worker "
                "that serves the run's queue needs the same TETHER_TOOLS", type="ToolMissing")
        info = activity.info()
        context = ToolContext(idempotency_key=input.idempotency_key, workflow_id=input.workflow_id,
                              step=input.step, attempt=info.attempt)
        try:
            arguments = await self.conversations.full_arguments_async(input.assistant_ref, input.call)
        except StoreError as error:
            raise store_failure(error) from None
        started = time.monotonic()
        try:
            output = await tool.call(arguments, context)
            result = ToolResult(exit_code=0, stdout=output)
        except InvalidArguments as error:
            result = ToolResult(exit_code=INVALID_ARGUMENTS_EXIT, stderr=str(error))
        except tool.options.transient as error:
            # Worth retrying: Temporal does, as the tool's options say.
            raise ApplicationError(f"{type(error).__name__}: {error}", type="TransientToolError") from None
        except Exception as error:
            # The tool's own error: the model reads it and decides what to do.
            result = ToolResult(exit_code=FAILED_EXIT, stderr=f"{type(error).__name__}: {error}")
        result.duration_ms = int((time.monotonic() - started) * 1000)
        message = Message(role="tool", name=input.call.name, tool_call_id=input.call.id,
                          content=result.model_dump_json())
        stored = message.model_dump_json(exclude_defaults=True).encode()
        try:
            ref = await self.conversations.blobs.put_async(stored)
        except StoreError as error:
            raise store_failure(error) from None
        return ToolCallOutput(result=cap_result(result), message_ref=ref)
