"""The baseline for the history benchmark: the same agent loop with the conversation passed
by value, as the OpenAI Agents and pydantic-ai Temporal integrations pass it.

Each step's model activity receives every message so far and returns the model's turn; the
workflow keeps the list. Tool calls go through tether's own `tool_call` activity in a sandbox
from tether's own `acquire_sandbox`, so tool output is byte for byte what `AgentRun` gets:
only how the conversation reaches the model differs.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from tether.activities.model import SCRIPT_REF_PREFIX
    from tether.activities.tools import render_for_model
    from tether.contracts import (
        BUILTIN_TOOLS,
        AcquireInput,
        Message,
        ModelSpec,
        ModelTurn,
        ReleaseInput,
        SandboxHandle,
        SandboxSpec,
        Script,
        ToolCallInput,
        ToolCallOutput,
    )
    from tether.contracts.activities import ACQUIRE_SANDBOX, RELEASE_SANDBOX, TOOL_CALL

if TYPE_CHECKING:
    from tether.llm import Providers
    from tether.store import Conversations

ACTIVITY_NAME = "by_value_model_call"


class ByValueInput(BaseModel):
    task: str
    system_prompt: str
    model: ModelSpec
    """A scripted model whose script is already in the store (`store:<digest>`), as tether
    keeps it: the script is the same size for both loops and belongs to neither."""
    tools: list[str]
    sandbox_queue: str
    """tether's shared queue, where `acquire_sandbox` runs."""
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)


class ByValueModelInput(BaseModel):
    model: ModelSpec
    messages: list[Message]
    tools: list[str]


class ByValueModel:
    """The baseline's model activity, with the store its script is in and the providers to
    call: register the bound method `call_model` on a worker."""

    def __init__(self, *, conversations: Conversations, providers: Providers) -> None:
        self.conversations = conversations
        self.providers = providers

    @activity.defn(name=ACTIVITY_NAME)
    async def call_model(self, input: ByValueModelInput) -> ModelTurn:
        digest = input.model.name.removeprefix(SCRIPT_REF_PREFIX)
        script = Script.model_validate_json(self.conversations.blobs.get(digest))
        spec = input.model.model_copy(update={"script": script})
        tools = [BUILTIN_TOOLS[name] for name in input.tools]
        return await self.providers.get(spec.provider).complete(spec, input.messages, tools)


@workflow.defn(name="ByValueAgentRun")
class ByValueAgentRun:
    @workflow.run
    async def run(self, input: ByValueInput) -> int:
        """Returns the number of steps taken."""
        messages = [Message(role="system", content=input.system_prompt),
                    Message(role="user", content=input.task)]
        sandbox: SandboxHandle | None = None
        step = 0
        try:
            while True:
                step += 1
                turn = await workflow.execute_activity(
                    ACTIVITY_NAME, ByValueModelInput(
                        model=input.model, messages=messages, tools=input.tools),
                    result_type=ModelTurn, start_to_close_timeout=timedelta(minutes=10),
                    summary=f"step {step} · scripted",
                )
                messages.append(Message(role="assistant", content=turn.text,
                                        tool_calls=turn.tool_calls))
                if not turn.tool_calls:
                    return step
                if sandbox is None:
                    sandbox = await workflow.execute_activity(
                        ACQUIRE_SANDBOX,
                        AcquireInput(workflow_id=workflow.info().workflow_id,
                                     run_id=workflow.info().run_id, spec=input.sandbox),
                        result_type=SandboxHandle, task_queue=input.sandbox_queue,
                        start_to_close_timeout=timedelta(minutes=2),
                    )
                outputs = await asyncio.gather(*(
                    workflow.execute_activity(
                        TOOL_CALL,
                        ToolCallInput(workflow_id=workflow.info().workflow_id, step=step,
                                      index=index, call=call, container_id=sandbox.container_id,
                                      timeout_seconds=input.sandbox.tool_timeout_seconds,
                                      output_limit_bytes=input.sandbox.output_limit_bytes),
                        result_type=ToolCallOutput, task_queue=sandbox.task_queue,
                        start_to_close_timeout=timedelta(minutes=2),
                        summary=f"step {step} · {call.name}",
                    )
                    for index, call in enumerate(turn.tool_calls)
                ))
                messages += [
                    Message(role="tool", name=call.name, tool_call_id=call.id,
                            content=render_for_model(output.result))
                    for call, output in zip(turn.tool_calls, outputs, strict=True)
                ]
        finally:
            if sandbox is not None:
                await workflow.execute_activity(
                    RELEASE_SANDBOX, ReleaseInput(container_id=sandbox.container_id),
                    task_queue=sandbox.task_queue, start_to_close_timeout=timedelta(minutes=1),
                )
