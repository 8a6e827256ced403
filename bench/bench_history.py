"""History bytes per step, tether against the conversation passed by value, and a 2,000-step run.

The workload: a scripted model whose every turn asks for one `shell` call in the run's
sandbox, printing a few hundred bytes. Each turn's text, command and output are the same
size at every step, so any growth in bytes per step comes from how the loop passes the
conversation, not from the work. Both loops run the same script against the same tool
activity on the same worker; the baseline (`bench/by_value.py`) differs only in handing
every model call the whole conversation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from tether import client as tether
from tether.activities.model import SCRIPT_REF_PREFIX, ModelActivities
from tether.contracts import AgentRunInput, AgentRunResult, Script

from bench.by_value import ByValueAgentRun, ByValueInput, ByValueModel
from bench.history_bytes import around, bytes_by_event_type, step_sizes, step_starts, total_bytes
from bench.local_stack import Stack, local_stack
from bench.report import Report

MEASURED_STEPS = 210
"""Enough for windows around step 200 (195 to 205) and a next step to close the last one."""
EARLY, LATE, HALF_WINDOW = 10, 200, 5
LONG_STEPS = 2000
MAX_BYTES_PER_STEP = 4096
FLATNESS = 0.10
TASK = "Survey the sandbox, one batch of numbers a step, then say you are done."


def tool_command(step: int) -> str:
    """About 360 bytes of output, the same length at every step: a step number, then 50
    zero-padded six-digit numbers."""
    first = step * 100
    return f"printf 'step %04d\\n' {step}; seq -s ' ' -f '%06g' {first:06d} {first + 49:06d}"


def script(steps: int) -> dict[str, Any]:
    """`steps` model turns: one tool call each, and a final answer in the last."""
    turns: list[dict[str, Any]] = [
        {"text": f"Step {k:04d}: listing the next batch.",
         "tool_calls": [{"name": "shell", "arguments": {"command": tool_command(k)}}]}
        for k in range(1, steps)
    ]
    turns.append({"text": "Done: every batch is listed."})
    return {"turns": turns}


def tether_input(steps: int, **overrides: Any) -> dict[str, Any]:
    return {
        "task": TASK,
        "model": {"provider": "scripted", "script": script(steps)},
        "budget": {"max_steps": steps, "max_seconds": None},
        **overrides,
    }


async def executions(stack: Stack, workflow_id: str) -> list[list[HistoryEvent]]:
    """The event histories of every execution of a run, one per continue-as-new."""
    histories = []
    async for execution in stack.client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        handle = stack.client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        histories.append(list((await handle.fetch_history()).events))
    return histories


@dataclass
class Measured:
    """One run of `MEASURED_STEPS` steps in a single execution."""

    sizes: list[int]
    """Bytes added by each step; `sizes[k - 1]` is step k's."""
    total: int
    """The whole history's bytes."""


async def tether_run(stack: Stack) -> tuple[Measured, dict[str, float]]:
    """An `AgentRun` with continue-as-new off, so one history holds every step; and where
    the bytes of the steps around step 200 go, by event type."""
    run_input = tether_input(MEASURED_STEPS, continue_as_new_after_steps=None)
    handle = await tether.start_run(stack.client, run_input, task_queue=stack.task_queue)
    result = await handle.result()
    if result.status != "completed" or result.steps != MEASURED_STEPS:
        raise RuntimeError(f"the measured AgentRun did not finish its script: {result}")
    histories = await executions(stack, handle.id)
    if len(histories) != 1:
        raise RuntimeError(f"the measured AgentRun took {len(histories)} executions: Temporal "
                           "suggested continue-as-new, so no one history holds step 200")
    events = histories[0]
    breakdown = bytes_by_event_type(events, "model_call", LATE - HALF_WINDOW, LATE + HALF_WINDOW)
    return Measured(step_sizes(events, "model_call"), total_bytes(events)), breakdown


async def by_value_run(stack: Stack) -> Measured:
    """The same workload with the conversation passed by value."""
    # Into the store the worker's model activities read, where tether's own run keeps its script.
    blobs = stack.model.conversations.blobs
    digest = blobs.put(Script.model_validate(script(MEASURED_STEPS)).model_dump_json().encode())
    defaults = AgentRunInput(task=TASK)
    handle = await stack.client.start_workflow(
        ByValueAgentRun.run,
        ByValueInput(task=TASK, system_prompt=defaults.system_prompt,
                     model={"provider": "scripted", "name": SCRIPT_REF_PREFIX + digest},
                     tools=list(defaults.tools), sandbox_queue=stack.task_queue),
        id=f"bench-by-value-{uuid.uuid4().hex[:8]}", task_queue=stack.extra_queue,
    )
    steps = await handle.result()
    if steps != MEASURED_STEPS:
        raise RuntimeError(f"the by-value run took {steps} steps, not {MEASURED_STEPS}")
    events = list((await handle.fetch_history()).events)
    return Measured(step_sizes(events, "by_value_model_call"), total_bytes(events))


@dataclass
class LongRun:
    seconds: float
    result: AgentRunResult
    histories: list[list[HistoryEvent]]

    @property
    def completed(self) -> bool:
        return self.result.status == "completed" and self.result.steps == LONG_STEPS

    def describe(self) -> str:
        """Each execution's steps and bytes, and the bytes of its first and last events: the
        input it started with and, but for the last, the input it continued as new with."""
        parts = []
        for events in sorted(self.histories, key=lambda h: h[0].event_time.ToDatetime()):
            steps = len(step_starts(events, "model_call"))
            parts.append(f"{steps} steps {total_bytes(events) / 1024:,.0f} KB "
                         f"(first event {events[0].ByteSize() / 1024:,.0f} KB, "
                         f"last {events[-1].ByteSize() / 1024:,.0f} KB)")
        return "; ".join(parts)


async def long_run(stack: Stack) -> LongRun:
    """A 2,000-step run with tether's default continue-as-new: every 500 steps, or sooner
    when Temporal suggests it."""
    started = time.monotonic()
    handle = await tether.start_run(stack.client, tether_input(LONG_STEPS),
                                    task_queue=stack.task_queue)
    result = await handle.result()
    seconds = time.monotonic() - started
    return LongRun(seconds, result, await executions(stack, handle.id))


def by_value_activities(model: ModelActivities) -> list[Callable[..., Any]]:
    """The baseline's model activity, on the tether worker's own store and providers."""
    return [ByValueModel(conversations=model.conversations, providers=model.providers).call_model]


async def run(report: Report) -> None:
    async with local_stack("history", workflows=[ByValueAgentRun],
                           activities=by_value_activities) as stack:
        ours, breakdown = await tether_run(stack)
        theirs = await by_value_run(stack)
        long = await long_run(stack)

    report.console.print(f"  history after {MEASURED_STEPS} steps: {ours.total / 1024:,.0f} KB; "
                         f"by value {theirs.total / 1024:,.0f} KB")
    report.console.print(f"  bytes per step around step {LATE}, by event type: "
                         + ", ".join(f"{k} {v:,.0f}" for k, v in breakdown.items()))
    early, late = around(ours.sizes, EARLY, HALF_WINDOW), around(ours.sizes, LATE, HALF_WINDOW)
    report.figure(f"history bytes/step @{EARLY}", early, "B", baseline_name="by value",
                  baseline=around(theirs.sizes, EARLY, HALF_WINDOW))
    report.figure(f"history bytes/step @{LATE}", late, "B",
                  goal=f"≤ {MAX_BYTES_PER_STEP:,} B and within {FLATNESS:.0%} of @{EARLY}",
                  met=late <= MAX_BYTES_PER_STEP and abs(late - early) <= FLATNESS * early,
                  baseline_name="by value", baseline=around(theirs.sizes, LATE, HALF_WINDOW))
    report.console.print(f"  {LONG_STEPS:,}-step run: {long.result.status} at step "
                         f"{long.result.steps}; executions: {long.describe()}")
    report.figure(f"{LONG_STEPS:,}-step run", long.seconds, "s", goal="completes",
                  met=long.completed)
    largest = max(total_bytes(events) for events in long.histories)
    report.figure(f"{LONG_STEPS:,}-step run: largest execution's history", largest / 1024, "KB")
