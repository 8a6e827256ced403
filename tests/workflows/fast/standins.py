"""Stand-in activities for fast `AgentRun` tests, and the helpers that run them.

The workflow knows its activities by name only, so a worker that registers these under the
real names runs the real workflow with no Docker and no model: a scripted model whose
turns the test writes, a sandbox host that hands out numbered containers on the test's own
queue, and tools that record their idempotency keys and can be held mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from tether.activities.tools import no_sandbox_here
from tether.client import start_run
from tether.contracts import (
    AcquireInput,
    AgentRunResult,
    ModelCallInput,
    ModelCallOutput,
    ReleaseInput,
    RunStatus,
    SandboxHandle,
    ScriptTurn,
    StartConversationInput,
    StartConversationOutput,
    StepRecord,
    ToolCall,
    ToolCallInput,
    ToolCallOutput,
    ToolResult,
    Usage,
    names,
)
from tether.contracts.activities import (
    ACQUIRE_SANDBOX,
    MODEL_CALL,
    RELEASE_SANDBOX,
    START_CONVERSATION,
    TOOL_CALL,
)
from tether.workflows.agent import AgentRun

HEARTBEAT_EVERY = timedelta(milliseconds=100)
"""Short, so a held tool call learns of its cancellation at once."""


def turn(text: str | None = None, *, shell: str | list[str] | None = None,
         tokens: int = 0, cost_usd: float = 0.0) -> ScriptTurn:
    """One model turn: text, shell calls, or both; `tokens` and `cost_usd` are its usage."""
    commands = [shell] if isinstance(shell, str) else list(shell or [])
    return ScriptTurn(
        text=text,
        tool_calls=[ToolCall(name="shell", arguments={"command": c}) for c in commands],
        usage=Usage(input_tokens=tokens, cost_usd=cost_usd),
    )


class StandIns:
    """One test's activities. Its bound methods are registered under the real names.

    The model plays `turns` by step number (turn 1 at step 1, ...), repeating the last turn
    past the end, as a model that never stops calling tools would. With `hold_tools`, tool
    calls wait (heartbeating) until `let_tools_finish()`, so a test can act mid-call; with
    `hold_models`, model calls wait likewise until `let_models_finish()`.
    Containers named in `lost` answer every tool call with a non-retryable SandboxGone.
    Tool calls all go to the host queue: the stand-in sandboxes are on no worker, so the local
    activity tether's workers offer first answers as a workflows-only worker's does.
    """

    def __init__(self, *turns: ScriptTurn, hold_tools: bool = False, hold_models: bool = False,
                 lost: tuple[str, ...] = ()) -> None:
        assert turns, "a script needs at least one turn"
        self.turns = list(turns)
        self.task_queue = f"fast-{uuid.uuid4().hex[:12]}"
        self.lost = set(lost)
        self.started: list[StartConversationInput] = []
        self.model_calls: list[ModelCallInput] = []
        self.acquired: list[AcquireInput] = []
        self.tool_calls: list[ToolCallInput] = []
        self.cancelled_tools: list[str] = []
        self.released: list[str] = []
        self.tool_started = asyncio.Event()
        self.model_started = asyncio.Event()
        self._tools_may_finish = asyncio.Event()
        self._models_may_finish = asyncio.Event()
        if not hold_tools:
            self._tools_may_finish.set()
        if not hold_models:
            self._models_may_finish.set()

    def activities(self) -> list[Callable[..., Any]]:
        return [self.start_conversation, self.model_call, self.acquire_sandbox, self.tool_call,
                self.release_sandbox, no_sandbox_here]

    def let_tools_finish(self) -> None:
        self._tools_may_finish.set()

    def let_models_finish(self) -> None:
        self._models_may_finish.set()

    @property
    def keys(self) -> list[str]:
        """The idempotency keys of the tool calls made, in order, retries included."""
        return [call.idempotency_key for call in self.tool_calls]

    @activity.defn(name=START_CONVERSATION)
    async def start_conversation(self, input: StartConversationInput) -> StartConversationOutput:
        self.started.append(input)
        return StartConversationOutput(head="conversation-0", models=input.models)

    @activity.defn(name=MODEL_CALL)
    async def model_call(self, input: ModelCallInput) -> ModelCallOutput:
        self.model_calls.append(input)
        self.model_started.set()
        await held_until(self._models_may_finish, f"step {input.step}")
        scripted = self.turns[min(input.step, len(self.turns)) - 1]
        calls = [call.model_copy(update={"id": call.id or f"call-{input.step}-{index}"})
                 for index, call in enumerate(scripted.tool_calls)]
        return ModelCallOutput(head=f"conversation-{input.step}", text=scripted.text,
                               tool_calls=calls, usage=scripted.usage or Usage(), cost_known=True)

    @activity.defn(name=ACQUIRE_SANDBOX)
    async def acquire_sandbox(self, input: AcquireInput) -> SandboxHandle:
        self.acquired.append(input)
        return SandboxHandle(container_id=f"box-{len(self.acquired)}", task_queue=self.task_queue,
                             worker="stand-in")

    @activity.defn(name=TOOL_CALL)
    async def tool_call(self, input: ToolCallInput) -> ToolCallOutput:
        self.tool_calls.append(input)
        if input.container_id in self.lost:
            raise ApplicationError(f"container {input.container_id} is gone", type="SandboxGone",
                                   non_retryable=True)
        self.tool_started.set()
        try:
            await held_until(self._tools_may_finish, input.call.name)
        except asyncio.CancelledError:
            self.cancelled_tools.append(input.idempotency_key)
            raise
        result = ToolResult(exit_code=0, stdout=f"ran {input.call.arguments.get('command')!r} "
                                                f"in {input.container_id}")
        return ToolCallOutput(result=result, message_ref=f"result:{input.idempotency_key}")

    @activity.defn(name=RELEASE_SANDBOX)
    async def release_sandbox(self, input: ReleaseInput) -> bool:
        self.released.append(input.container_id)
        return True


async def held_until(gate: asyncio.Event, detail: str) -> None:
    """Waits for `gate`, heartbeating as the real activities do: a heartbeat is how an
    activity learns it was cancelled."""
    while not gate.is_set():
        activity.heartbeat(detail)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), timeout=0.1)


@contextlib.asynccontextmanager
async def serving(client: Client, fakes: StandIns) -> AsyncIterator[Worker]:
    """A worker for `AgentRun` and the stand-ins, polling the stand-ins' own queue (which
    is also the queue their sandboxes name, so tool calls come back to it)."""
    async with Worker(
        client, task_queue=fakes.task_queue, workflows=[AgentRun], activities=fakes.activities(),
        max_heartbeat_throttle_interval=HEARTBEAT_EVERY,
        default_heartbeat_throttle_interval=HEARTBEAT_EVERY,
    ) as worker:
        yield worker


def run_input(fakes: StandIns, **overrides: Any) -> dict[str, Any]:
    """An AgentRun input whose scripted model is the stand-ins' script."""
    script = {"turns": [t.model_dump(mode="json", exclude_defaults=True) for t in fakes.turns]}
    return {"task": "fix the build", "model": {"provider": "scripted", "script": script}, **overrides}


async def start(client: Client, fakes: StandIns, **overrides: Any) -> WorkflowHandle[Any, AgentRunResult]:
    return await start_run(client, run_input(fakes, **overrides), task_queue=fakes.task_queue,
                           workflow_id=f"fast-run-{uuid.uuid4().hex[:12]}")


async def status(handle: WorkflowHandle[Any, Any]) -> RunStatus:
    return await handle.query(names.QUERY_STATUS, result_type=RunStatus)


async def transcript(handle: WorkflowHandle[Any, Any]) -> list[StepRecord]:
    return await handle.query(names.QUERY_TRANSCRIPT, result_type=list[StepRecord])


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Polls `check` until it is true, or fails the test naming `what` it waited for."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
