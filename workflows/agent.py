"""The AgentRun workflow: the durable loop of model turns and tool calls.

Deterministic code only. Each model call and each tool call is an activity, so Temporal's
event history resumes a run at the first unfinished step after any crash. Budgets are
workflow state, checked before every step and after every model call; the wall-clock limit
is a durable timer that interrupts the step in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tether.contracts import (
        AgentRunInput,
        AgentRunResult,
        FinalStatus,
        Message,
        NewMessage,
        RunStatus,
        StepRecord,
    )
    from tether.contracts.caps import cap_record
    from tether.contracts.events import RunProgress
    from tether.contracts.files import RunArtifacts
    from tether.contracts.names import (
        AGENT_RUN,
        NEVER_STARTED,
        QUERY_ARTIFACTS,
        QUERY_PROGRESS,
        QUERY_STATUS,
        QUERY_TRANSCRIPT,
        SIGNAL_CHILD_WAITING,
        UPDATE_APPROVE,
        UPDATE_CANCEL,
        UPDATE_EXTEND_BUDGET,
        UPDATE_SEND_MESSAGE,
    )
    from tether.workflows import budget as budgets
    from tether.workflows import visibility
    from tether.workflows.account_charge import charge_last_tools
    from tether.workflows.artifacts import collect_artifacts
    from tether.workflows.budget import BudgetExhausted, Spent
    from tether.workflows.deadline import Deadline
    from tether.workflows.delegation import ParentLink, heard_from_child
    from tether.workflows.model_turn import model_turn
    from tether.workflows.options import DEFAULT_OPTIONS
    from tether.workflows.run_input import parse_input
    from tether.workflows.run_start import list_mcp_tools, start_conversation
    from tether.workflows.sandbox_lease import SandboxLease
    from tether.workflows.state import RunState
    from tether.workflows.steering import check_approval, check_text, require_running
    from tether.workflows.tool_runner import ToolRunner

T = TypeVar("T")

LASTING_ATTRIBUTES_PATCH = "search-attributes-when-lasting"
REFUSED_AT_START_PATCH = "refused-at-start-shows-failed"
FINAL_ANSWER_PROMPT = (
    "The run's budget is spent. Give your final answer now, from what you have, "
    "without calling tools."
)


class CancelRequested(Exception):
    """A person asked the run to stop through the `cancel` update."""


@workflow.defn(name=AGENT_RUN)
class AgentRun:
    @workflow.init
    def __init__(self, raw: dict[str, Any], carried: dict[str, Any] | None = None) -> None:
        # The state is built here, not in `run`: an update sent right after the run starts
        # arrives in its first workflow task, and is handled before `run` begins.
        self.options = DEFAULT_OPTIONS
        self.input: AgentRunInput | None = None
        self.state: RunState | None = None
        """All the run holds, carried whole across continue-as-new."""
        self.lease: SandboxLease | None = None
        self.tool_runner: ToolRunner | None = None
        self.deadline = Deadline()
        self.parent_link: ParentLink | None = None
        try:
            self.input = parse_input(raw)
        except ApplicationError as invalid:
            # Raised from `run`, so it fails the run; raised here, it would fail the
            # workflow task, which Temporal retries forever.
            self.invalid_input: ApplicationError | None = invalid
            return
        self.invalid_input = None
        self.state = (
            RunState.model_validate(carried) if carried
            else RunState(started_at=workflow.now(), budget=self.input.budget)
        )
        self.lease = SandboxLease(self.state, self.input.sandbox, self.options, on_change=self._publish,
                                  files=self.input.files)
        self.tool_runner = ToolRunner(self.state, self.input, self.lease, self.options,
                                      on_change=self._publish)
        self.deadline.arm(budgets.seconds_left(self.state.budget, self._elapsed()))
        self.parent_link = ParentLink(self.input)

    # --- the loop -----------------------------------------------------------------------
    @workflow.run
    async def run(self, raw: dict[str, Any], carried: dict[str, Any] | None = None) -> AgentRunResult:
        self.deadline.began = True
        if self.invalid_input is not None:
            if workflow.patched("invalid-input-status"):
                # Such a run is listed and filtered like any failed run.
                visibility.publish_invalid(self.invalid_input.message)
            raise self.invalid_input
        self._publish()
        release = True
        try:
            if self._state.head is None:
                await self._begin()
            result = await self._loop()
            found = await self._collect_artifacts()
            return result.model_copy(update={"artifacts": found.artifacts,
                                             "skipped_artifacts": found.skipped})
        except workflow.ContinueAsNewError:
            release = False  # the next execution carries the sandbox on
            raise
        finally:
            if release:
                await self._collect_artifacts()  # a failed or cancelled run's too
                await charge_last_tools(self._state, self.options)
                await self._lease.release()

    async def _begin(self) -> None:
        """Stores the task and lists the run's tools; a run refused here (a tool or an
        endpoint the worker lacks) shows as failed, with why, like one that fails later."""
        try:
            await start_conversation(self._state, self._input, self.options)
            if self._input.mcp_servers:
                await list_mcp_tools(self._state, self._input, self._lease, self.options)
        except ApplicationError as refused:
            if workflow.patched(REFUSED_AT_START_PATCH):
                self._state.phase = "failed"
                self._state.last_error = refused.message
                self._publish()
            raise

    async def _loop(self) -> AgentRunResult:
        """Runs the steps; a failure or a cancellation from Temporal shows in the status."""
        try:
            return await self._steps()
        except asyncio.CancelledError:
            self._state.phase = "cancelled"
            self._publish()
            raise
        except Exception as error:
            self._state.phase = "failed"
            self._state.last_error = str(error)
            self._publish()
            raise

    async def _steps(self) -> AgentRunResult:
        try:
            while True:
                self._check_budget(starting_step=True)
                if self._state.cancel_reason is not None:
                    raise CancelRequested(self._state.cancel_reason)
                if self._should_continue_as_new():
                    await self._continue_as_new()
                await self._interruptible(self._step())
                if self._state.answer is not None:
                    return self._finish("completed", "the model gave its final answer",
                                        self._state.answer)
        except BudgetExhausted as exhausted:
            state = self._state
            output = state.answer if state.answer is not None else await self._final_answer()
            if output is None:
                output = state.unread_answer
            return self._finish("budget_exhausted", str(exhausted), output)
        except CancelRequested as cancelled:
            return self._finish("cancelled", f"cancelled: {cancelled}", None)

    async def _step(self, *, final: bool = False) -> None:
        """One model turn and the tool calls it asked for; sets `answer` when there are none.

        A `final` step is the extra turn `on_exhausted: final_answer` grants: no tools, and
        no budget check after it, since nothing follows it.
        """
        state = self._state
        state.step += 1
        try:
            turn, served_by, note, heard = await model_turn(
                state, tools=[] if final else state.tool_names(self._input.tools),
                options=self.options, model_label=self._model_label())
        except asyncio.CancelledError:
            state.record(StepRecord(step=state.step, model=self._model_label(),
                                    note="interrupted during the model call"))
            raise
        state.usage = state.usage + turn.usage
        calls = [] if final else turn.tool_calls
        entry = StepRecord(step=state.step, model=served_by, text=turn.text, tool_calls=calls,
                           usage=turn.usage, note=joined("final answer" if final else None, note),
                           messages=heard, head=turn.head)
        if not turn.cost_known and state.budget.max_cost_usd is not None:
            state.last_error = f"{served_by} has no known price: max_cost_usd cannot count its cost"
            entry.note = joined(entry.note, state.last_error)
        state.cost_known = state.cost_known and turn.cost_known
        # A person's message that arrived while the model was answering has not been read:
        # the model gets another turn to read it rather than the message being dropped.
        state.unread_answer = None
        if not calls and (final or not state.inbox):
            state.answer = turn.text or ""
        elif not calls:
            state.unread_answer = turn.text or ""
        lost: list[str] = []  # sandboxes lost under the calls: the transcript says so
        try:
            if not final:
                self._check_budget(starting_step=False)
            if calls:
                state.phase = "running_tools"
                state.in_flight = cap_record(entry)
                # Calls that finish in this workflow task (on this worker, as local
                # activities) end before anyone could filter on `running_tools`: the search
                # attributes follow when a call goes to another queue or waits for a person
                # (the tool runner's `on_change`), and at the step's end.
                self._publish(lasting=not workflow.patched(LASTING_ATTRIBUTES_PATCH))
                entry.tool_results = await self._tool_runner.run(
                    calls, lost=lost, text=turn.text, digests=turn.argument_digests)
                entry.snapshot = await self._lease.after_step(state.step)
                # The step's results as the next model call appends them: what a fork reads.
                entry.result_refs = [message.ref for message in state.tool_results]
                state.phase = "thinking"
        except BudgetExhausted:
            if calls:
                entry.note = joined(entry.note, "its tool calls did not run: the budget is spent")
            raise
        except asyncio.CancelledError:
            entry.note = joined(entry.note, "interrupted while its tool calls ran")
            raise
        finally:
            entry.note = joined(entry.note, *lost)
            state.record(entry)
            self._publish()

    async def _final_answer(self) -> str | None:
        """With `on_exhausted: final_answer`, one last turn without tools, when tokens,
        dollars and time remain for it."""
        state = self._state
        if state.budget.on_exhausted != "final_answer" or not budgets.allows_final_answer(
                state.budget, self._spent()):
            return None
        state.inbox.append(NewMessage(message=Message(role="user", content=FINAL_ANSWER_PROMPT)))
        try:
            await self._interruptible(self._step(final=True))
        except (BudgetExhausted, CancelRequested, ApplicationError):
            return None
        return state.answer

    async def _continue_as_new(self) -> None:
        # Updates in flight and removals of lost sandboxes finish in this execution rather
        # than being cut off.
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._lease.removals_done()
        if self._state.cancel_reason is not None:
            raise CancelRequested(self._state.cancel_reason)
        state = self._state
        state.continued += 1
        state.continued_at_step = state.step
        # The models go on by reference, as the state holds them: a script enters the
        # history once, not once per execution. So do a fork's inherited steps, which the
        # state's transcript holds.
        fork = self._input.fork and self._input.fork.model_copy(update={"steps": []})
        carried = self._input.model_copy(
            update={"model": state.models[0], "fallback_models": state.models[1:], "fork": fork})
        workflow.continue_as_new(args=[carried.model_dump(mode="json"), state.model_dump(mode="json")])

    def _should_continue_as_new(self) -> bool:
        every = self._input.continue_as_new_after_steps
        steps_here = self._state.step - self._state.continued_at_step
        return workflow.info().is_continue_as_new_suggested() or (
            every is not None and steps_here >= every)

    # --- interruption and ending -----------------------------------------------------
    async def _interruptible(self, work: Awaitable[T]) -> T:
        """Runs `work` until it ends, the deadline passes or a person cancels the run.
        Interrupted work is cancelled, and the activities it was waiting on with it."""
        task = asyncio.ensure_future(work)
        state = self._state
        try:
            await workflow.wait_condition(
                lambda: task.done() or self.deadline.passed or state.cancel_reason is not None)
        except asyncio.CancelledError:
            await cancel_and_wait(task)
            raise
        if task.done():
            return task.result()
        await cancel_and_wait(task)
        if state.cancel_reason is not None:
            raise CancelRequested(state.cancel_reason)
        raise budgets.out_of_time(self._state.budget, self._elapsed())

    def _check_budget(self, *, starting_step: bool) -> None:
        if self.deadline.passed:
            raise budgets.out_of_time(self._state.budget, self._elapsed())
        budgets.check(self._state.budget, self._spent(), starting_step=starting_step)

    def _finish(self, status: FinalStatus, reason: str, output: str | None) -> AgentRunResult:
        self._state.phase = status
        self._publish()
        return AgentRunResult(
            status=status, stop_reason=reason, output=output, steps=self._state.step,
            usage=self._state.usage, seconds=round(self._elapsed(), 3),
            cost_known=self._state.cost_known, delegated_steps=self._state.delegated_steps,
            egress_bytes=self._state.egress_bytes,
        )

    # --- control and visibility ------------------------------------------------------
    @workflow.query(name=QUERY_STATUS)
    def status(self) -> RunStatus:
        if self.state is None or self.input is None:
            raise RuntimeError(NEVER_STARTED)
        return visibility.status_of(self.state, self.input, self._elapsed_now())

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self, after_step: int = 0) -> RunProgress:
        """What `tether.watch` derives its events from, in one consistent snapshot."""
        state = self._state
        return RunProgress(
            status=self.status(), recorded_events=state.recorded_events,
            steps=[s for s in state.transcript if s.step > after_step], in_flight=state.in_flight)

    def _publish(self, *, lasting: bool = True) -> None:
        """Shows the run's state; `lasting=False` for a state that may not outlast the
        workflow task, which updates the details only, not the search attributes."""
        if not workflow.in_workflow():
            # The worker is evicting this run from its cache: its coroutines are closed
            # outside the workflow's loop, and the next worker to replay it publishes.
            return
        visibility.publish(visibility.status_of(self._state, self._input, self._elapsed()),
                           self._state.started_at, search_attributes=lasting)
        if self.parent_link is not None:
            self.parent_link.tell(self._state)

    @workflow.query(name=QUERY_ARTIFACTS)
    def artifacts(self) -> RunArtifacts:
        """What the run's `artifacts` globs collected when it ended: also for a run that failed
        or was cancelled from Temporal, which has no result to list them in."""
        return (self.state.artifacts if self.state else None) or RunArtifacts()

    @workflow.query(name=QUERY_TRANSCRIPT)
    def transcript(self) -> list[StepRecord]:
        """The run's steps, the most recent `state.TRANSCRIPT_KEPT` of them, each capped."""
        return list(self._state.transcript) if self.state else []

    @workflow.update(name=UPDATE_APPROVE)
    async def approve(self, call_id: str, approved: bool, reason: str | None = None,
                      digest: str | None = None) -> str:
        """Decides a waiting call. With `digest`, only if it names the arguments that would
        run (the validator refuses another), so a person approves exactly what they read."""
        self.deadline.began = True
        wait = self._state.approvals[call_id]
        wait.approved, wait.reason = approved, reason
        return f"call {call_id} ({wait.request.tool}) {'approved' if approved else 'denied'}"

    @approve.validator
    def _validate_approve(self, call_id: str, approved: bool, reason: str | None = None,
                          digest: str | None = None) -> None:
        check_approval(self._state.approvals if self.state else {}, call_id, approved, reason, digest)

    @workflow.update(name=UPDATE_CANCEL)
    async def cancel(self, reason: str = "cancelled by a person") -> str:
        self.deadline.began = True
        self._state.cancel_reason = reason
        return f"cancelling at step {self._state.step}: {reason}"

    @cancel.validator
    def _validate_cancel(self, reason: str = "cancelled by a person") -> None:
        require_running(self.state)
        check_text("the reason", reason)

    @workflow.update(name=UPDATE_SEND_MESSAGE)
    async def send_message(self, text: str) -> str:
        self.deadline.began = True
        self._state.inbox.append(NewMessage(message=Message(role="user", content=text)))
        self._state.from_people.append(text)
        return f"message queued for step {self._state.step + 1}"

    @send_message.validator
    def _validate_send_message(self, text: str) -> None:
        require_running(self.state)
        check_text("the message", text)
        if not text.strip():
            raise ValueError("the message is empty")

    @workflow.signal(name=SIGNAL_CHILD_WAITING)
    def child_waiting(self, child_id: str, waiting: list[dict[str, Any]]) -> None:
        """A sub-agent's calls (and its own children's) waiting for a person, as it tells them."""
        if self.state is not None:
            heard_from_child(self.state, child_id, waiting)
            self._publish()

    @workflow.update(name=UPDATE_EXTEND_BUDGET)
    async def extend_budget(self, more: dict[str, Any]) -> dict[str, Any]:
        """Raises limits by the given amounts; returns the limits it changed, as they now are."""
        self.deadline.began = True
        state = self._state
        state.budget = budgets.extend(state.budget, more)
        if "max_seconds" in more:
            self.deadline.arm(budgets.seconds_left(state.budget, self._elapsed()))
        self._publish()
        return state.budget.model_dump(include=set(more))

    @extend_budget.validator
    def _validate_extend_budget(self, more: dict[str, Any]) -> None:
        require_running(self.state)
        budgets.extend(self._state.budget, more)  # raises, naming the field, on a bad one

    # --- small helpers ----------------------------------------------------------------
    @property
    def _state(self) -> RunState:
        assert self.state is not None
        return self.state

    @property
    def _input(self) -> AgentRunInput:
        assert self.input is not None
        return self.input

    @property
    def _lease(self) -> SandboxLease:
        assert self.lease is not None
        return self.lease

    @property
    def _tool_runner(self) -> ToolRunner:
        assert self.tool_runner is not None
        return self.tool_runner

    def _model_label(self) -> str:
        return self._state.last_model or visibility.model_label(self._input.model)

    def _elapsed(self) -> float:
        return (workflow.now() - self._state.started_at).total_seconds()

    def _elapsed_now(self) -> float:
        """Elapsed seconds by the real clock, for queries: `workflow.now()` is the time of the
        last workflow task, so a run waiting 16 minutes for a person would read 0.7 s. A
        query records nothing in history, so reading the clock there cannot break replay."""
        if self._state.phase in visibility.FINAL_PHASES:
            return self._elapsed()
        with workflow.unsafe.sandbox_unrestricted():
            now = datetime.now(UTC)
        return (now - self._state.started_at).total_seconds()

    def _spent(self) -> Spent:
        return Spent(steps=self._state.step + self._state.delegated_steps, usage=self._state.usage,
                     seconds=self._elapsed(),
                     egress_bytes=self._state.egress_bytes)

    async def _collect_artifacts(self) -> RunArtifacts:
        return await collect_artifacts(self._state, self._input, self._lease, self.options)



def joined(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancels abandoned work and waits until its activities have stopped."""
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass  # the work is abandoned: how it ended no longer matters
