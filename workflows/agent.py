"""The AgentRun workflow: the durable loop of model turns and tool calls.

Deterministic code only. Each model call and each tool call is an activity, so Temporal's
event history resumes a run at the first unfinished step after any crash. Budgets are
workflow state, checked before every step and after every model call.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.model import (
        ModelCallInput,
        ModelCallOutput,
        NewMessage,
        StartConversationInput,
        call_model,
        start_conversation,
    )
    from activities.sandboxes import AcquireInput, ReleaseInput, acquire_sandbox, release_sandbox
    from activities.tools import ToolCallInput, call_tool
    from llm.messages import Message
    from workflows import budget as budgets
    from workflows import visibility
    from workflows.budget import BudgetExhausted, Spent
    from workflows.state import ApprovalWait, PendingMessage, RunState, SandboxRef
    from workflows.tool_calls import invalid_call_reason
    from workflows.types import (
        AgentRunInput,
        AgentRunResult,
        PendingApproval,
        RunStatus,
        StepRecord,
        ToolCall,
        ToolResult,
    )

MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30), maximum_attempts=5,
    non_retryable_error_types=["ModelPermanentError", "StoreMissing"],
)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10),
    maximum_attempts=5, non_retryable_error_types=["SandboxGone", "SandboxBroken"],
)
SANDBOX_RETRY = RetryPolicy(maximum_attempts=3, non_retryable_error_types=["SandboxBroken"])
HEARTBEAT = timedelta(seconds=5)
# How long a tool call may wait for the worker that holds its sandbox before the run
# concludes that worker is gone and moves to a new sandbox.
HOST_WORKER_WAIT = timedelta(seconds=60)


class CancelRequested(Exception):
    """A person asked the run to stop through the `cancel` update."""


@workflow.defn(name="AgentRun")
class AgentRun:
    def __init__(self) -> None:
        self.input: AgentRunInput | None = None
        self.state: RunState | None = None
        self.phase = "starting"
        self.cancel_reason: str | None = None
        self.approvals: dict[str, ApprovalWait] = {}
        self.acquiring: asyncio.Future[Any] | None = None

    # --- the loop -----------------------------------------------------------------------
    @workflow.run
    async def run(self, raw: dict[str, Any], carried: dict[str, Any] | None = None) -> AgentRunResult:
        self.input = parse_input(raw)
        self.state = (
            RunState.model_validate(carried) if carried
            else RunState(started_at=workflow.now(), budget=self.input.budget)
        )
        visibility.publish(self)
        release = True
        try:
            if self.state.head is None:
                await self._start_conversation()
            return await self._loop()
        except workflow.ContinueAsNewError:
            release = False
            raise
        finally:
            if release:
                await self._release_sandbox()

    async def _loop(self) -> AgentRunResult:
        state, input = self._state, self._input
        try:
            while True:
                budgets.check(state.budget, self._spent(), starting_step=True)
                if self.cancel_reason is not None:
                    raise CancelRequested(self.cancel_reason)
                if self._should_continue_as_new():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    state.continued += 1
                    state.continued_at_step = state.step
                    workflow.continue_as_new(args=[input.model_dump(mode="json"),
                                                   state.model_dump(mode="json")])
                output = await self._within_deadline(self._step())
                if output is not None:
                    return self._finish("completed", "the model gave its final answer", output)
        except BudgetExhausted as exhausted:
            output = None
            # Only a step limit leaves tokens, dollars and time for one more turn.
            if input.budget.on_exhausted == "final_answer" and exhausted.limit == "max_steps":
                output = await self._final_answer()
            return self._finish("budget_exhausted", str(exhausted), output)
        except CancelRequested as cancelled:
            return self._finish("cancelled", f"cancelled: {cancelled}", None)
        except asyncio.CancelledError:
            self.phase = "cancelled"
            visibility.publish(self)
            raise
        except Exception as error:
            self.phase = "failed"
            state.last_error = str(error)
            visibility.publish(self)
            raise

    async def _step(self) -> str | None:
        """One model turn and the tool calls it asked for. Returns the final answer, if any."""
        state = self._state
        state.step += 1
        turn, served_by, note = await self._model_turn(tools=self._input.tools)
        state.usage = state.usage + turn.usage
        state.cost_known = state.cost_known and turn.cost_known
        entry = StepRecord(step=state.step, model=served_by, text=turn.text,
                           tool_calls=turn.tool_calls, usage=turn.usage, note=note)
        budgets.check(state.budget, self._spent(), starting_step=False)
        if not turn.tool_calls:
            state.record(entry)
            visibility.publish(self)
            return turn.text or ""
        self.phase = "running_tools"
        visibility.publish(self)
        entry.tool_results = await self._run_tools(turn.tool_calls)
        state.record(entry)
        self.phase = "thinking"
        visibility.publish(self)
        return None

    async def _model_turn(self, *, tools: list[str]) -> tuple[ModelCallOutput, str, str | None]:
        """Calls the primary model; on a permanent failure or spent retries, each fallback."""
        state = self._state
        self.phase = "thinking"
        notes: list[str] = []
        pending = [NewMessage.model_validate(p.model_dump()) for p in state.pending]
        for index, spec in enumerate(state.models):
            try:
                turn = await workflow.execute_activity(
                    call_model,
                    ModelCallInput(workflow_id=workflow.info().workflow_id, step=state.step,
                                   model=spec, head=state.head or "", append=pending, tools=tools),
                    start_to_close_timeout=timedelta(minutes=10),
                    heartbeat_timeout=timedelta(seconds=30),
                    retry_policy=MODEL_RETRY,
                    summary=f"step {state.step} · {visibility.model_label(spec)}",
                )
            except ActivityError as error:
                reraise_cancellation(error)
                reason = f"{visibility.model_label(spec)} failed: {root_message(error)}"
                state.last_error = reason
                if index == len(state.models) - 1:
                    raise ApplicationError(reason, type="ModelFailed", non_retryable=True) from None
                notes.append(reason + f"; falling back to {visibility.model_label(state.models[index + 1])}")
                continue
            state.head, state.pending = turn.head, []
            state.last_model = visibility.model_label(spec)
            return turn, state.last_model, "; ".join(notes) or None
        raise ApplicationError("no model to call", type="ModelFailed", non_retryable=True)

    async def _final_answer(self) -> str | None:
        """One last turn without tools, so the model can summarise what it has."""
        try:
            self._state.pending.append(PendingMessage(message=Message(
                role="user", content="The run's budget is spent. Give your final answer now, "
                "from what you have, without calling tools.").model_dump()))
            turn, served_by, note = await self._model_turn(tools=[])
        except ApplicationError:
            return None
        self._state.usage = self._state.usage + turn.usage
        self._state.record(StepRecord(step=self._state.step + 1, model=served_by, text=turn.text,
                                      usage=turn.usage, note=note or "final answer"))
        return turn.text

    # --- tools --------------------------------------------------------------------------
    async def _run_tools(self, calls: list[ToolCall]) -> list[ToolResult]:
        outcomes = await asyncio.gather(*(self._run_tool(i, call) for i, call in enumerate(calls)))
        self._state.pending.extend(pending for _, pending in outcomes)
        return [result for result, _ in outcomes]

    async def _run_tool(self, index: int, call: ToolCall) -> tuple[ToolResult, PendingMessage]:
        problem = invalid_call_reason(call, self._input.tools)
        if problem is None and call.name in self._input.approval.tools:
            problem = await self._await_approval(index, call)
        if problem is not None:
            result = ToolResult(exit_code=126, stderr=problem)
            return result, tool_message(call, result)
        for attempt in range(2):
            sandbox = await self._sandbox()
            try:
                output = await workflow.execute_activity(
                    call_tool,
                    ToolCallInput(
                        workflow_id=workflow.info().workflow_id, step=self._state.step,
                        index=index, call=call, container_id=sandbox.container_id,
                        timeout_seconds=self._input.sandbox.tool_timeout_seconds,
                        output_limit_bytes=self._input.sandbox.output_limit_bytes,
                    ),
                    task_queue=sandbox.task_queue,
                    start_to_close_timeout=timedelta(
                        seconds=self._input.sandbox.tool_timeout_seconds + 60),
                    schedule_to_start_timeout=HOST_WORKER_WAIT,
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=TOOL_RETRY,
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"step {self._state.step} · {call.name}",
                )
                return output.result, PendingMessage(ref=output.message_ref)
            except ActivityError as error:
                reraise_cancellation(error)
                if attempt == 0 and sandbox_lost(error):
                    # The worker holding the sandbox, or the container, is gone. The run
                    # goes on in a fresh sandbox and says so.
                    self._state.last_error = (
                        f"sandbox on {sandbox.worker} lost ({root_message(error)}); "
                        "continuing in a new sandbox"
                    )
                    self._state.sandbox = None
                    continue
                result = ToolResult(exit_code=125, stderr=f"tool call failed: {root_message(error)}")
                return result, tool_message(call, result)
        raise AssertionError("unreachable")

    async def _await_approval(self, index: int, call: ToolCall) -> str | None:
        """Waits for a person's decision. Returns why the call may not run, or None."""
        call_id = f"{self._state.step}-{index}"
        wait = ApprovalWait(request=PendingApproval(call_id=call_id, tool=call.name,
                                                    arguments=call.arguments))
        self.approvals[call_id] = wait
        self.phase = "awaiting_approval"
        visibility.publish(self)
        try:
            await workflow.wait_condition(lambda: wait.approved is not None,
                                          timeout=self._input.approval.timeout_seconds)
        except TimeoutError:
            wait.approved = False
            wait.reason = f"no approval within {self._input.approval.timeout_seconds:g} s"
        finally:
            self.approvals.pop(call_id, None)
            self.phase = "running_tools"
        if wait.approved:
            return None
        return f"a person denied this call: {wait.reason or 'no reason given'}"

    async def _sandbox(self) -> SandboxRef:
        """The run's sandbox, acquired at its first tool call. Concurrent calls share it."""
        state = self._state
        if state.sandbox is not None:
            return state.sandbox
        if self.acquiring is None:
            self.acquiring = asyncio.ensure_future(workflow.execute_activity(
                acquire_sandbox,
                AcquireInput(workflow_id=workflow.info().workflow_id,
                             run_id=workflow.info().first_execution_run_id,
                             spec=self._input.sandbox),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=SANDBOX_RETRY,
                summary="acquire sandbox",
            ))
        # Shielded: a run interrupted while its container is being made must still learn the
        # container's id, or nothing would remove it. `_release_sandbox` awaits it.
        handle = await asyncio.shield(self.acquiring)
        self.acquiring = None
        if state.sandbox is None:
            state.sandbox = SandboxRef(**handle.model_dump())
            visibility.publish(self)
        return state.sandbox

    async def _release_sandbox(self) -> None:
        if self.acquiring is not None:
            try:
                handle = await self.acquiring
                self._state.sandbox = SandboxRef(**handle.model_dump())
            except ActivityError:
                pass  # nothing was made
            self.acquiring = None
        sandbox, self._state.sandbox = self._state.sandbox, None
        if sandbox is not None:
            await self._release(sandbox)

    async def _release(self, sandbox: SandboxRef) -> None:
        try:
            await workflow.execute_activity(
                release_sandbox, ReleaseInput(container_id=sandbox.container_id),
                task_queue=sandbox.task_queue,
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_start_timeout=HOST_WORKER_WAIT,
                retry_policy=SANDBOX_RETRY,
                summary="release sandbox",
            )
        except ActivityError as error:
            # Its worker is gone: the reaper on that host removes the container.
            self._state.last_error = f"sandbox release failed: {root_message(error)}"

    # --- deadline and ending ---------------------------------------------------------
    async def _within_deadline(self, step: Any) -> Any:
        """Runs a step, interrupting it at the run's deadline or at a `cancel` update."""
        task = asyncio.ensure_future(step)
        remaining = budgets.seconds_left(self._state.budget, self._elapsed())
        try:
            await workflow.wait_condition(
                lambda: task.done() or self.cancel_reason is not None, timeout=remaining)
        except TimeoutError:
            await cancel_and_wait(task)
            budgets.check(self._state.budget, self._spent(), starting_step=True)
            raise AssertionError("the deadline passed but no budget was exhausted") from None
        except asyncio.CancelledError:
            await cancel_and_wait(task)
            raise
        if not task.done():
            await cancel_and_wait(task)
            raise CancelRequested(self.cancel_reason)
        return task.result()

    def _finish(self, status: str, reason: str, output: str | None) -> AgentRunResult:
        self.phase = status
        visibility.publish(self)
        return AgentRunResult(
            status=status, stop_reason=reason, output=output, steps=self._state.step,  # type: ignore[arg-type]
            usage=self._state.usage, seconds=round(self._elapsed(), 3),
        )

    def _should_continue_as_new(self) -> bool:
        every = self._input.continue_as_new_after_steps
        steps_here = self._state.step - self._state.continued_at_step
        return workflow.info().is_continue_as_new_suggested() or (
            every is not None and steps_here >= every)

    # --- control and visibility ------------------------------------------------------
    @workflow.query
    def status(self) -> RunStatus:
        return visibility.status_of(self)

    @workflow.query
    def transcript(self) -> list[StepRecord]:
        return list(self._state.transcript) if self.state else []

    @workflow.update
    async def approve(self, call_id: str, approved: bool, reason: str | None = None) -> str:
        wait = self.approvals[call_id]
        wait.approved, wait.reason = approved, reason
        return f"call {call_id} ({wait.request.tool}) {'approved' if approved else 'denied'}"

    @approve.validator
    def _validate_approve(self, call_id: str, approved: bool, reason: str | None = None) -> None:
        if call_id not in self.approvals:
            waiting = ", ".join(self.approvals) or "none"
            raise ValueError(f"no call {call_id!r} is waiting for approval (waiting: {waiting})")

    @workflow.update
    async def cancel(self, reason: str = "cancelled by a person") -> str:
        self.cancel_reason = reason
        return f"cancelling at step {self._state.step}: {reason}"

    @cancel.validator
    def _validate_cancel(self, reason: str = "cancelled by a person") -> None:
        if self.phase in visibility.FINAL_PHASES:
            raise ValueError(f"the run has already ended ({self.phase})")

    @workflow.update
    async def send_message(self, text: str) -> str:
        self._state.pending.append(
            PendingMessage(message=Message(role="user", content=text).model_dump()))
        return f"message queued for step {self._state.step + 1}"

    @send_message.validator
    def _validate_send_message(self, text: str) -> None:
        if not text.strip():
            raise ValueError("the message is empty")
        if self.phase in visibility.FINAL_PHASES:
            raise ValueError(f"the run has already ended ({self.phase})")

    @workflow.update
    async def extend_budget(self, more: dict[str, float]) -> dict[str, Any]:
        self._state.budget = budgets.extend(self._state.budget, **more)
        visibility.publish(self)
        return self._state.budget.model_dump(include=set(more))

    @extend_budget.validator
    def _validate_extend_budget(self, more: dict[str, float]) -> None:
        allowed = {"max_steps", "max_tokens", "max_cost_usd", "max_seconds"}
        unknown = set(more) - allowed
        if unknown or not more:
            raise ValueError(f"extend_budget takes {sorted(allowed)}; got {sorted(more)}")
        budgets.extend(self._state.budget, **more)  # raises on a non-positive amount

    # --- small helpers ----------------------------------------------------------------
    @property
    def _state(self) -> RunState:
        assert self.state is not None
        return self.state

    @property
    def _input(self) -> AgentRunInput:
        assert self.input is not None
        return self.input

    def _elapsed(self) -> float:
        return (workflow.now() - self._state.started_at).total_seconds()

    def _spent(self) -> Spent:
        return Spent(steps=self._state.step, usage=self._state.usage, seconds=self._elapsed())

    async def _start_conversation(self) -> None:
        started = await workflow.execute_activity(
            start_conversation,
            StartConversationInput(system_prompt=self._input.system_prompt, task=self._input.task,
                                   models=[self._input.model, *self._input.fallback_models]),
            start_to_close_timeout=timedelta(seconds=30),
            summary="store the task",
        )
        self._state.head, self._state.models = started.head, started.models
        self.phase = "thinking"


def parse_input(raw: Any) -> AgentRunInput:
    """Validates the run's input; a malformed one fails the run at once, never retried."""
    try:
        return AgentRunInput.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        )
        raise ApplicationError(
            f"invalid AgentRun input: {problems}", type="InvalidInput", non_retryable=True
        ) from None


def tool_message(call: ToolCall, result: ToolResult) -> PendingMessage:
    message = Message(role="tool", name=call.name, tool_call_id=call.id,
                      content=result.model_dump_json())
    return PendingMessage(message=message.model_dump())


def root_message(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


def reraise_cancellation(error: ActivityError) -> None:
    """An activity cancelled because its step was interrupted surfaces as an ActivityError;
    the step must stop, not treat it as a failed call and go on."""
    if isinstance(error.cause, CancelledError):
        raise asyncio.CancelledError() from error


def sandbox_lost(error: ActivityError) -> bool:
    cause = error.cause
    if isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START:
        return True
    return isinstance(cause, ApplicationError) and cause.type == "SandboxGone"


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, ActivityError, ApplicationError):
        pass
