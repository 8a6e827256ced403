"""The AgentRun workflow: the durable loop of model turns and tool calls.

Deterministic code only. Each model call and each tool call is an activity, so Temporal's
event history resumes a run at the first unfinished step after any crash. Budgets are
workflow state, checked before every step and after every model call; the wall-clock limit
is a durable timer that interrupts the step in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from tether.contracts import (
        AgentRunInput,
        AgentRunResult,
        FinalStatus,
        Message,
        ModelCallInput,
        ModelCallOutput,
        NewMessage,
        RunStatus,
        StartConversationInput,
        StartConversationOutput,
        StepRecord,
    )
    from tether.contracts.activities import (
        COLLECT_ARTIFACTS,
        MCP_LIST_TOOLS,
        MODEL_CALL,
        START_CONVERSATION,
    )
    from tether.contracts.caps import cap_record
    from tether.contracts.digests import given_digest
    from tether.contracts.events import RunProgress
    from tether.contracts.files import CollectInput, RunArtifacts
    from tether.contracts.names import (
        AGENT_RUN,
        QUERY_ARTIFACTS,
        QUERY_PROGRESS,
        QUERY_STATUS,
        QUERY_TRANSCRIPT,
        UPDATE_APPROVE,
        UPDATE_CANCEL,
        UPDATE_EXTEND_BUDGET,
        UPDATE_SEND_MESSAGE,
    )
    from tether.contracts.tools import McpListInput, McpListOutput
    from tether.workflows import budget as budgets
    from tether.workflows import visibility
    from tether.workflows.budget import BudgetExhausted, Spent
    from tether.workflows.deadline import Deadline
    from tether.workflows.failures import host_gone, root_message, sandbox_lost, stop_if_cancelled
    from tether.workflows.options import DEFAULT_OPTIONS
    from tether.workflows.sandbox_lease import SandboxLease
    from tether.workflows.state import RunState
    from tether.workflows.tool_runner import ToolRunner

T = TypeVar("T")

MAX_MESSAGE_CHARS = 32_000
LASTING_ATTRIBUTES_PATCH = "search-attributes-when-lasting"
LIST_AGAIN_PATCH = "mcp-listing-again-in-a-new-sandbox"
REFUSED_ENDPOINTS_PATCH = "refused-endpoints-are-invalid-input"
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
                await self._lease.release()

    async def _begin(self) -> None:
        """Stores the task and lists the run's tools; a run refused here (a tool or an
        endpoint the worker lacks) shows as failed, with why, like one that fails later."""
        try:
            await self._start_conversation()
            if self._input.mcp_servers:
                await self._list_mcp_tools()
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
            turn, served_by, note, heard = await self._model_turn(
                tools=[] if final else state.tool_names(self._input.tools))
        except asyncio.CancelledError:
            state.record(StepRecord(step=state.step, model=self._model_label(),
                                    note="interrupted during the model call"))
            raise
        state.usage = state.usage + turn.usage
        calls = [] if final else turn.tool_calls
        entry = StepRecord(step=state.step, model=served_by, text=turn.text, tool_calls=calls,
                           usage=turn.usage, note=joined("final answer" if final else None, note),
                           messages=heard)
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

    async def _model_turn(
        self, *, tools: Sequence[str],
    ) -> tuple[ModelCallOutput, str, str | None, list[str]]:
        """Calls the primary model; on a permanent failure or spent retries, each fallback.
        Returns its answer, the model that gave it, notes, and the people's messages it read."""
        state = self._state
        state.phase = "thinking"
        notes: list[str] = []
        # Tool results first: providers need each right after the call it answers.
        sent_results, sent_inbox = len(state.tool_results), len(state.inbox)
        append = [*state.tool_results, *state.inbox]
        heard = list(state.from_people)
        state.in_flight = StepRecord(step=state.step, model=self._model_label(), messages=heard)
        for index, spec in enumerate(state.models):
            label = visibility.model_label(spec)
            try:
                turn = await workflow.execute_activity(
                    MODEL_CALL,
                    ModelCallInput(workflow_id=workflow.info().workflow_id, step=state.step,
                                   model=spec, head=state.head or "", append=append,
                                   tools=list(tools), toolset=state.toolset),
                    result_type=ModelCallOutput,
                    start_to_close_timeout=self.options.model_timeout,
                    heartbeat_timeout=self.options.model_heartbeat,
                    retry_policy=self.options.model_retry,
                    summary=f"step {state.step} · {label}",
                )
            except ActivityError as error:
                stop_if_cancelled(error)
                reason = f"{label} failed: {root_message(error)}"
                state.last_error = reason
                if index == len(state.models) - 1:
                    raise ApplicationError(reason, type="ModelFailed", non_retryable=True) from None
                notes.append(f"{reason}; fell back to {visibility.model_label(state.models[index + 1])}")
                continue
            state.head = turn.head
            # Only what this call carried: a message sent during the call waits for the next.
            del state.tool_results[:sent_results]
            del state.inbox[:sent_inbox]
            del state.from_people[:len(heard)]
            state.last_model = label
            return turn, label, "; ".join(notes) or None, heard
        raise ApplicationError("no model to call", type="ModelFailed", non_retryable=True)

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
        # history once, not once per execution.
        carried = self._input.model_copy(
            update={"model": state.models[0], "fallback_models": state.models[1:]})
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
            cost_known=self._state.cost_known,
        )

    # --- control and visibility ------------------------------------------------------
    @workflow.query(name=QUERY_STATUS)
    def status(self) -> RunStatus:
        if self.state is None or self.input is None:
            raise RuntimeError("the run's input is invalid: it never started")
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
        visibility.publish(visibility.status_of(self._state, self._input, self._elapsed()),
                           self._state.started_at, search_attributes=lasting)

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
        approvals = self._state.approvals if self.state else {}
        if call_id not in approvals:
            waiting = ", ".join(approvals) or "none"
            raise ValueError(f"no call {call_id!r} is waiting for approval (waiting: {waiting})")
        # A JSON null gets past the SDK's decoding as None, whatever the parameter's type.
        if not isinstance(approved, bool):
            raise ValueError(f"approved must be true or false, got {approved!r}")
        if reason is not None:
            check_text("the reason", reason)
        request = approvals[call_id].request
        if digest is not None:
            check_digest(call_id, request.arguments_digest, digest)
        elif approved and request.capped and request.arguments_digest is not None:
            # Nobody has seen such a call whole but through the store, which gives the digest:
            # approved without it, the unseen middle would run.
            raise ValueError(
                f"call {call_id}'s arguments are cut in the middle in the run's history, so an "
                f"approval must name their digest: read them whole with `tether status "
                f"{workflow.info().workflow_id}` and approve with the --digest it prints")

    @workflow.update(name=UPDATE_CANCEL)
    async def cancel(self, reason: str = "cancelled by a person") -> str:
        self.deadline.began = True
        self._state.cancel_reason = reason
        return f"cancelling at step {self._state.step}: {reason}"

    @cancel.validator
    def _validate_cancel(self, reason: str = "cancelled by a person") -> None:
        self._require_running()
        check_text("the reason", reason)

    @workflow.update(name=UPDATE_SEND_MESSAGE)
    async def send_message(self, text: str) -> str:
        self.deadline.began = True
        self._state.inbox.append(NewMessage(message=Message(role="user", content=text)))
        self._state.from_people.append(text)
        return f"message queued for step {self._state.step + 1}"

    @send_message.validator
    def _validate_send_message(self, text: str) -> None:
        self._require_running()
        check_text("the message", text)
        if not text.strip():
            raise ValueError("the message is empty")

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
        self._require_running()
        budgets.extend(self._state.budget, more)  # raises, naming the field, on a bad one

    def _require_running(self) -> None:
        if self.state is None:
            raise ValueError("the run's input is invalid: it never started")
        if self.state.phase in visibility.FINAL_PHASES:
            raise ValueError(f"the run has already ended ({self.state.phase})")

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
        return Spent(steps=self._state.step, usage=self._state.usage, seconds=self._elapsed())

    async def _collect_artifacts(self) -> RunArtifacts:
        """Takes the files the input's `artifacts` globs match from the sandbox into the store,
        once, before the sandbox is released. A run that never had a sandbox has none."""
        state = self._state
        # Only a run that asks for artifacts issues this activity. The field is newer than
        # every recorded history (an older worker refuses an input that has it), so those
        # replay without the command and need no `workflow.patched` marker.
        if not self._input.artifacts or state.artifacts is not None:
            return state.artifacts or RunArtifacts()
        state.artifacts = RunArtifacts()
        sandbox = await self._lease.settle()
        if sandbox is None:
            return state.artifacts
        try:
            state.artifacts = await workflow.execute_activity(
                COLLECT_ARTIFACTS,
                CollectInput(workflow_id=workflow.info().workflow_id, container_id=sandbox.container_id,
                             started_at=sandbox.started_at, globs=self._input.artifacts),
                result_type=RunArtifacts,
                task_queue=sandbox.task_queue,
                start_to_close_timeout=self.options.collect_timeout,
                schedule_to_start_timeout=self.options.host_wait(sandbox.host_wait_seconds),
                retry_policy=self.options.collect_retry,
                summary="collect artifacts",
            )
        except ActivityError as error:
            state.last_error = f"artifacts could not be collected: {root_message(error)}"
        return state.artifacts

    async def _list_mcp_tools(self) -> None:
        """Lists the run's MCP servers' tools once, at its start, and adds them to its tools;
        a server that runs in the sandbox is started there to be asked (again in a new
        sandbox when that one is lost first, as a tool call is)."""
        state = self._state
        in_sandbox = any(server.command for server in self._input.mcp_servers)
        for attempt in range(2):
            sandbox = await self._lease.get() if in_sandbox else None
            try:
                listed = await workflow.execute_activity(
                    MCP_LIST_TOOLS,
                    McpListInput(toolset=state.toolset or "", servers=self._input.mcp_servers,
                                 container_id=sandbox.container_id if sandbox else None,
                                 started_at=sandbox.started_at if sandbox else None),
                    result_type=McpListOutput,
                    task_queue=sandbox.task_queue if sandbox else None,
                    start_to_close_timeout=self.options.mcp_list_timeout,
                    schedule_to_start_timeout=(
                        self.options.host_wait(sandbox.host_wait_seconds) if sandbox else None),
                    retry_policy=self.options.mcp_list_retry,
                    summary="list MCP tools",
                )
            except ActivityError as error:
                if (sandbox is not None and attempt == 0 and sandbox_lost(error)
                        and workflow.patched(LIST_AGAIN_PATCH)):
                    state.last_error = (f"sandbox on {sandbox.worker} lost ({root_message(error)}); "
                                        "listing the MCP servers' tools again in a new sandbox")
                    self._lease.lose(sandbox, host_answered=not host_gone(error))
                    continue
                raise ApplicationError(f"the run's MCP servers could not be listed: {root_message(error)}",
                                       type="RunRefused", non_retryable=True) from None
            state.toolset, state.routes = listed.toolset, listed.routes
            return

    async def _start_conversation(self) -> None:
        try:
            # A local activity: its input (the task, and any script) is already in history
            # as the run's input, and a local activity's input is not recorded again.
            started = await workflow.execute_local_activity(
                START_CONVERSATION,
                StartConversationInput(
                    system_prompt=self._input.system_prompt, task=self._input.task,
                    models=[self._input.model, *self._input.fallback_models],
                    max_cost_usd=self._input.budget.max_cost_usd, tools=self._input.tools,
                    files=self._input.files, disk_mb=self._input.sandbox.disk_mb,
                    mcp_servers=self._input.mcp_servers),
                result_type=StartConversationOutput,
                start_to_close_timeout=self.options.start_timeout,
                retry_policy=self.options.start_retry,
                summary="store the task",
            )
        except ActivityError as error:
            # A run that can't start (a cost budget nobody can count) fails with the reason;
            # one whose input gives a URL or a key variable the worker did not configure fails
            # as any invalid input does.
            kind = "RunRefused"
            if invalid_input(error) and workflow.patched(REFUSED_ENDPOINTS_PATCH):
                kind = "InvalidInput"
            raise ApplicationError(root_message(error), type=kind,
                                   non_retryable=True) from None
        self._state.head, self._state.models = started.head, started.models
        self._state.toolset, self._state.routes = started.toolset, started.routes
        self._state.phase = "thinking"


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


def invalid_input(error: ActivityError) -> bool:
    """Whether the activity refused what the run's input asks for."""
    return isinstance(error.cause, ApplicationError) and error.cause.type == "InvalidInput"


def check_text(what: str, value: object) -> None:
    """An update's text argument: a string (a JSON null decodes as None), and no longer than a
    message, since it reaches the model's next input or the run's result, both in history."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {'null' if value is None else type(value).__name__}")
    if len(value) > MAX_MESSAGE_CHARS:
        raise ValueError(f"{what} has {len(value)} characters; the limit is {MAX_MESSAGE_CHARS}")


def check_digest(call_id: str, waiting: str | None, given: object) -> None:
    """An approval's digest must name the arguments that would run. The refusal shows only the
    start of the right one: enough to recognise, not to approve unread."""
    if not isinstance(given, str):
        raise ValueError(f"the digest must be text, got {type(given).__name__}")
    digest = given_digest(given)
    read_it = f"read it again with `tether status {workflow.info().workflow_id}`"
    if waiting is None:
        raise ValueError(f"call {call_id} was asked for before tether recorded digests, so none "
                         f"can be checked: {read_it} and approve it without a digest")
    if digest != waiting:
        raise ValueError(f"call {call_id} would run arguments with digest {waiting[:19]}…, not "
                         f"{digest[:19]}…: what was read is not what would run; {read_it} and "
                         "approve with the digest it prints")


def joined(*notes: str | None) -> str | None:
    return "; ".join(n for n in notes if n) or None


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancels abandoned work and waits until its activities have stopped."""
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass  # the work is abandoned: how it ended no longer matters
