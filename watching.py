"""`watch`: a run's story as typed events (`contracts/events.py`), live, from anywhere.

How, and why this way: a watcher polls the run's `progress` query (with backoff while
nothing changes) and, while the model writes, the model call's heartbeat details (the text
so far). Queries and heartbeats are never recorded in the event history, so any number of
watchers, for as long as they like, add nothing to it; an update that waited for new events
would have been recorded, and an event log kept in the workflow would have duplicated the
transcript in its state. The numbered events are derived from what the run records anyway:
its transcript, and a count of the events the steps before the transcript made
(`RunState.recorded_events`), so every watcher numbers them alike and a watch resumes after
any offset without gaps or duplicates. See `contracts/events.py` for numbered and live events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError
from tether.contracts import AgentRunResult, PendingApproval, RunStatus, StepRecord
from tether.contracts.events import (
    ApprovalNeeded,
    BudgetUpdate,
    RunEvent,
    RunFinished,
    RunProgress,
    StepFinished,
    StepStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from tether.contracts.names import QUERY_PROGRESS
from tether.reading import (
    QUERY_TIMEOUT,
    UNPOLLED_QUERY_TIMEOUT,
    partial_text,
    timed_out,
    unanswered,
    workers_polling,
)

FINAL_STATES = ("completed", "budget_exhausted", "cancelled", "failed")


def step_events(step: StepRecord, offset: int) -> list[RunEvent]:
    """A recorded step's numbered events, from `offset`: started, each call started, each
    call finished, finished (as many as `workflows/state.events_of` counts)."""
    calls = step.tool_calls
    events: list[RunEvent] = [StepStarted(offset=offset, step=step.step, model=step.model,
                                          messages=step.messages, inherited=step.inherited)]
    for i, call in enumerate(calls):
        events.append(ToolCallStarted(offset=offset + 1 + i, step=step.step, call_id=f"{step.step}-{i}",
                                      tool=call.name, arguments=call.arguments,
                                      text=None if i else step.text))
    for i, call in enumerate(calls):
        result = step.tool_results[i] if i < len(step.tool_results) else None
        events.append(ToolCallFinished(offset=offset + 1 + len(calls) + i, step=step.step,
                                       call_id=f"{step.step}-{i}", tool=call.name, result=result))
    events.append(StepFinished(offset=offset + 1 + 2 * len(calls), step=step.step, model=step.model,
                               text=step.text, usage=step.usage, note=step.note))
    return events


def numbered_events(progress: RunProgress, last_recorded_step: int) -> tuple[list[RunEvent], int]:
    """The numbered events a snapshot shows, and the offset the run's `finished` would take.

    `last_recorded_step` is the step the query was asked after: the steps it returned follow
    it, and a step beyond the last recorded one is in flight (started, not yet recorded)."""
    offset = progress.recorded_events - sum(2 + 2 * len(s.tool_calls) for s in progress.steps)
    events: list[RunEvent] = []
    for step in progress.steps:
        events += step_events(step, offset)
        offset += 2 + 2 * len(step.tool_calls)
        last_recorded_step = step.step
    status = progress.status
    if status.step > last_recorded_step:
        flying = progress.in_flight
        if flying is not None and flying.step != status.step:
            flying = None
        events.append(StepStarted(offset=offset, step=status.step, model=status.model,
                                  messages=flying.messages if flying else []))
        offset += 1
        if flying is not None:
            for i, call in enumerate(flying.tool_calls):
                events.append(ToolCallStarted(offset=offset + i, step=status.step,
                                              call_id=f"{status.step}-{i}", tool=call.name,
                                              arguments=call.arguments,
                                              text=None if i else flying.text))
            offset += len(flying.tool_calls)
    return events, offset


class _Watcher:
    """One watcher's position in a run: what it has yielded, and what it saw live."""

    def __init__(self, client: Client, workflow_id: str, after: int) -> None:
        self.client = client
        self.handle: WorkflowHandle[Any, AgentRunResult] = client.get_workflow_handle(
            workflow_id, result_type=AgentRunResult)
        self.last_offset = after
        self.recorded_step = 0
        self.text_step = -1
        self.text = ""
        self.announced: set[str] = set()
        self.budget_key: tuple[Any, ...] | None = None
        self.polled = True
        """Whether a worker polled the run's queue when the watch began."""

    def fresh(self, events: list[RunEvent]) -> list[RunEvent]:
        out: list[RunEvent] = [e for e in events if e.offset is not None and e.offset > self.last_offset]
        if out:
            self.last_offset = max(e.offset for e in out if e.offset is not None)
        return out

    def live(self, status: RunStatus, partial: str | None) -> list[RunEvent]:
        events: list[RunEvent] = []
        if partial is not None and status.state == "thinking":
            if self.text_step != status.step:
                self.text_step, self.text = status.step, ""
            delta = new_text(self.text, partial)
            if delta:
                events.append(TextDelta(step=status.step, text=delta))
            self.text = partial
        for pending in status.pending_approvals:
            if pending.call_id not in self.announced:
                self.announced.add(pending.call_id)
                events.append(ApprovalNeeded(
                    step=status.step, call_id=pending.call_id, tool=pending.tool,
                    arguments=pending.arguments, arguments_digest=pending.arguments_digest,
                    capped=pending.capped, text=pending.text,
                    approve_command=approve_command(self.handle.id, pending),
                    status_command=f"tether status {self.handle.id}"))
        for child in status.children_waiting:
            if f"{child.workflow_id} {child.call_id}" not in self.announced:
                self.announced.add(f"{child.workflow_id} {child.call_id}")
                events.append(ApprovalNeeded(
                    step=status.step, call_id=child.call_id, tool=child.tool, arguments={},
                    arguments_digest=child.arguments_digest, approve_command=child.approve_command,
                    status_command=f"tether status {child.workflow_id}", workflow_id=child.workflow_id))
        b = status.budget
        # Seconds move on their own: report them every 5 s rather than on every look.
        key = (status.state, b.steps, b.tokens, b.cost_usd, b.max_steps, b.max_tokens,
               b.max_cost_usd, b.max_seconds, int(b.seconds // 5))
        if key != self.budget_key:
            self.budget_key = key
            events.append(BudgetUpdate(state=status.state, budget=b))
        return events

    async def progress(self) -> RunProgress | None:
        """The run's snapshot; None when the run has no state to show (its input was invalid)
        and has closed."""
        try:
            return await self.handle.query(
                QUERY_PROGRESS, self.recorded_step, result_type=RunProgress,
                rpc_timeout=QUERY_TIMEOUT if self.polled else UNPOLLED_QUERY_TIMEOUT)
        except Exception as error:
            description = await self.handle.describe()
            if description.status not in (None, WorkflowExecutionStatus.RUNNING):
                return None
            if isinstance(error, RPCError) and timed_out(error):
                raise await unanswered(self.client, self.handle.id, description.task_queue,
                                       self.polled) from error
            raise

    async def finished(self, offset: int) -> RunFinished:
        try:
            result = await self.handle.result()
        except WorkflowFailureError as failure:
            cause = failure.cause
            while cause.__cause__ is not None:
                cause = cause.__cause__
            description = await self.handle.describe()
            closed = description.status.name.lower() if description.status else "failed"
            return RunFinished(offset=offset, result=None, status=closed, error=str(cause))
        return RunFinished(offset=offset, result=result, status=result.status)


def approve_command(workflow_id: str, pending: PendingApproval) -> str:
    """The command that approves exactly the arguments the run waits to run."""
    pinned = f" --digest {pending.arguments_digest}" if pending.arguments_digest else ""
    return f"tether approve {workflow_id} {pending.call_id}{pinned}"


def new_text(seen: str, now: str) -> str:
    """What `now` adds to `seen`. The heartbeat keeps only the text's tail, so when it has
    slid, the overlap is found by the end of what was seen."""
    if now.startswith(seen):
        return now[len(seen):]
    tail = seen[-200:]
    at = now.rfind(tail) if tail else -1
    return now[at + len(tail):] if at >= 0 else now


async def watch(
    client: Client, workflow_id: str, *, after: int = -1,
    poll_seconds: float = 0.25, max_poll_seconds: float = 2.0,
) -> AsyncIterator[RunEvent]:
    """Yields the run's events as they happen, ending with `finished`.

    Numbered events come after offset `after` (-1: from the start), each once, in order;
    live events (text, approvals, budget) as this watcher sees them. Works for any run,
    wherever it was started, and any number of watchers at once."""
    watcher = _Watcher(client, workflow_id, after)
    description = await watcher.handle.describe()
    watcher.polled = await workers_polling(client, description.task_queue) > 0
    delay = poll_seconds
    while True:
        progress = await watcher.progress()
        if progress is None:
            yield await watcher.finished(max(watcher.last_offset + 1, 0))
            return
        events, end = numbered_events(progress, watcher.recorded_step)
        if progress.steps:
            watcher.recorded_step = progress.steps[-1].step
        fresh = watcher.fresh(events)
        status = progress.status
        if status.state in FINAL_STATES:
            fresh += [event for event in watcher.live(status, None) if event.kind == "budget"]
            for event in fresh:
                yield event
            yield await watcher.finished(end)
            return
        partial = await partial_text(client, workflow_id) if status.state == "thinking" else None
        fresh += watcher.live(status, partial)
        for event in fresh:
            yield event
        # Quick while things happen; slower while the run waits (for a person, a long call).
        busy = any(not isinstance(event, BudgetUpdate) for event in fresh)
        delay = poll_seconds if busy else min(delay * 1.5, max_poll_seconds)
        await asyncio.sleep(delay)
