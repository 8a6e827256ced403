"""The cost of a turn: tether against pydantic-ai on the same dev server, and against the
same loop with no Temporal at all.

The workload, the same for all: `TURNS` turns, each a model answer of about 1 KB of text
asking for one tool call whose output is about 1 KB, then a final answer. tether's model is
the scripted one and its tool a `shell` call in the run's sandbox; the peer's model is a
`FunctionModel` and its tool a function in the worker's process (`bench/peer_pydantic_ai.py`:
pydantic-ai's `TemporalDurability`, and for one release its deprecated `TemporalAgent`); the
in-process loop (`bench/in_process.py`) plays tether's script through the same executor. The
runs take turns, `REPEATS` times, so all see the same machine.

A turn's time is read from each run's own history: from one model call's scheduling to the
next's (the first turn, which makes tether's sandbox, is left out). From tether's history
too: each workflow task's processing around the last step, against a workflow that does
nothing on the same server (`bench/floor_workflow.py`), and the tool call's time in the
worker, against the executor's own time for the same command on the same engine.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker
from tether import client as tether
from tether.contracts import SandboxSpec
from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER

from bench import floor_workflow as floor
from bench import in_process
from bench import peer_pydantic_ai as peer
from bench.local_stack import Stack, local_stack
from bench.report import Report
from bench.turn_times import (
    activity_spans,
    local_activities,
    scheduled,
    turn_seconds,
    workflow_task_seconds,
    workflow_task_waits,
)

TURNS = peer.TURNS
REPEATS = 5
EXECUTOR_CALLS = 10
"""Calls straight through the executor after each of tether's runs."""
LATE_STEPS = 5
"""Workflow tasks "at step 30" are those of the last `LATE_STEPS` steps."""
MAX_RATIO = 0.6
"""A tether turn at most this many times pydantic-ai's, in the same run. tether records a turn
with one round trip through the server (the model activity; the tool call runs inside the
workflow task) where pydantic-ai takes two (the model's and the tool's activities): 0.3x,
less than one round trip a turn, is out of reach of any workflow that records every turn
(BENCHMARKS.md)."""
LOCAL_TOOL_CALL = "tool_call_here"
MAX_WFT_OVER_FLOOR = 1.5
"""A tether workflow task at most this many times one of a workflow that does nothing: the
SDK's and the server's share of a task is the floor, and it moves with the machine."""
MAX_TOOL_OVER_EXECUTOR = 2.0
TASK = "Survey the sandbox, one batch a turn, then say you are done."
COMMAND = "printf 'step %02d\\n' {turn}; head -c 1000 /dev/zero | tr '\\\\0' y"


def tether_input() -> dict[str, Any]:
    text = "x" * 1000
    turns: list[dict[str, Any]] = [
        {"text": f"Turn {k:02d}. {text}",
         "tool_calls": [{"name": "shell", "arguments": {"command": COMMAND.format(turn=k)}}]}
        for k in range(1, TURNS)
    ]
    turns.append({"text": f"Done after {TURNS} turns."})
    return {"task": TASK, "model": {"provider": "scripted", "script": {"turns": turns}},
            "tools": ["shell"], "budget": {"max_steps": TURNS, "max_seconds": None}}


def is_tether_model(name: str) -> bool:
    return name == "model_call"


def is_peer_model(name: str) -> bool:
    return "model_request" in name


def is_floor(name: str) -> bool:
    return name == "floor_noop"


async def tether_run(stack: Stack) -> list[HistoryEvent]:
    handle = await tether.start_run(stack.client, tether_input(), task_queue=stack.task_queue)
    result = await handle.result()
    if result.status != "completed" or result.steps != TURNS:
        raise RuntimeError(f"tether's run did not finish its script: {result}")
    return list((await handle.fetch_history()).events)


async def floor_run(client: Client, queue: str) -> list[HistoryEvent]:
    handle = await client.start_workflow(
        floor.FloorWorkflow.run, id=f"bench-floor-{uuid.uuid4().hex[:8]}", task_queue=queue)
    await handle.result()
    return list((await handle.fetch_history()).events)


async def peer_run(client: Client, queue: str, workflow: Any = peer.PeerAgentRun) -> list[HistoryEvent]:
    handle = await client.start_workflow(
        workflow.run, TASK, id=f"bench-peer-{uuid.uuid4().hex[:8]}", task_queue=queue)
    output = await handle.result()
    if not output.startswith("Done"):
        raise RuntimeError(f"the peer's run did not finish its script: {output!r}")
    return list((await handle.fetch_history()).events)


def alone_labels(stack: Stack) -> dict[str, str]:
    """Labels for the sandboxes the benchmark makes itself. Not the worker's own id: while it
    serves, its sweep removes every container of its id that serves no run."""
    return {LABEL_MANAGED: "1", LABEL_WORKER: f"{stack.plugin.settings.worker_id}-alone"}


async def in_process_run(stack: Stack) -> list[float]:
    played = await in_process.play(
        tether_input(), providers=stack.model.providers, sandboxes=stack.host.sandboxes.sandboxes,
        labels=alone_labels(stack))
    if played.answer != f"Done after {TURNS} turns.":
        raise RuntimeError(f"the in-process loop did not finish its script: {played.answer!r}")
    return played.turns


@asynccontextmanager
async def executor_alone(stack: Stack) -> AsyncIterator[Callable[[int], Awaitable[list[float]]]]:
    """Times the same command straight through the executor, as the tool activity runs it,
    in a sandbox of its own: a batch after each of tether's runs, so the baseline sees the
    machine as the runs did."""
    sandboxes = stack.host.sandboxes.sandboxes
    container = await asyncio.to_thread(
        sandboxes.create, SandboxSpec(), alone_labels(stack),
        name=f"tether-bench-{uuid.uuid4().hex[:12]}")
    calls = 0

    async def batch(count: int) -> list[float]:
        nonlocal calls
        took = []
        for _ in range(count):
            calls += 1
            started = asyncio.get_running_loop().time()
            result = await sandboxes.run_tool(
                container.id, tool="shell", arguments={"command": COMMAND.format(turn=calls % 100)},
                key=f"bench/{calls}", timeout_s=60, limit_bytes=65536)
            assert result.exit_code == 0, result
            took.append(asyncio.get_running_loop().time() - started)
        return took

    try:
        await batch(3)  # warm-up
        yield batch
    finally:
        await asyncio.to_thread(sandboxes.remove, container.id)


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def timed_tool_calls(stack: Stack) -> list[float]:
    """Seconds each tool call took in the worker, from the activity's start to its output:
    the local activity's body (a call on the workflow's worker) and the host queue's alike.
    Wrapped on the worker's own `ToolActivities`, which both activities call."""
    tools = stack.host.tools
    inner = tools._run
    took: list[float] = []

    async def run_timed(input: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        output = await inner(input, **kwargs)
        took.append(time.perf_counter() - started)
        return output

    tools._run = run_timed  # type: ignore[method-assign]
    return took


async def run(report: Report) -> None:
    ours: list[list[HistoryEvent]] = []
    theirs: list[list[HistoryEvent]] = []
    legacy: list[list[HistoryEvent]] = []
    floors: list[list[HistoryEvent]] = []
    alone: list[float] = []
    async with local_stack("turns") as stack:
        from pydantic_ai.durable_exec.temporal import PydanticAIPlugin

        address = stack.client.service_client.config.target_host
        peer_client = await Client.connect(address, plugins=[PydanticAIPlugin()])
        queue, legacy_queue = f"{stack.task_queue}-peer", f"{stack.task_queue}-peer-legacy"
        floor_queue = f"{stack.task_queue}-floor"
        async with (Worker(peer_client, task_queue=queue, workflows=[peer.PeerAgentRun]),
                    Worker(peer_client, task_queue=legacy_queue, workflows=[peer.PeerLegacyAgentRun]),
                    Worker(stack.client, task_queue=floor_queue, workflows=[floor.FloorWorkflow],
                           activities=[floor.noop]),
                    executor_alone(stack) as executor_batch):
            # Warm-up: imports, sandbox, caches.
            await peer_run(peer_client, queue)
            await peer_run(peer_client, legacy_queue, peer.PeerLegacyAgentRun)
            await tether_run(stack)
            await in_process_run(stack)
            tool_seconds = timed_tool_calls(stack)
            tools_by_run: list[list[float]] = []
            executor: list[float] = []
            for _ in range(REPEATS):
                before = len(tool_seconds)
                ours.append(await tether_run(stack))
                tools_by_run.append(tool_seconds[before:])
                executor.extend(await executor_batch(EXECUTOR_CALLS))
                theirs.append(await peer_run(peer_client, queue))
                legacy.append(await peer_run(peer_client, legacy_queue, peer.PeerLegacyAgentRun))
                floors.append(await floor_run(stack.client, floor_queue))
                alone.extend((await in_process_run(stack))[1:])

    def turns(histories: list[list[HistoryEvent]], is_model: Any) -> list[float]:
        return [s for events in histories for s in turn_seconds(events, is_model)[1:]]

    ours_turn, theirs_turn = ms(turns(ours, is_tether_model)), ms(turns(theirs, is_peer_model))
    report.figure(f"per turn, {TURNS}-turn run, p50 over {REPEATS} runs", ours_turn, "ms",
                  at_most=MAX_RATIO, baseline_name="pydantic-ai TemporalDurability",
                  baseline=theirs_turn)
    report.figure("per turn, against pydantic-ai's deprecated TemporalAgent (for one release)",
                  ours_turn, "ms", baseline_name="pydantic-ai TemporalAgent",
                  baseline=ms(turns(legacy, is_peer_model)))
    report.figure("per turn, the same loop with no Temporal (one process, same executor), p50",
                  ms(alone), "ms")
    report.figure("the price of durability: tether's turn less that loop's, p50s",
                  ours_turn - ms(alone), "ms")
    late = [s for events, local in zip(ours, tools_by_run, strict=True)
            for s in workflow_task_seconds(events, scheduled(events, is_tether_model)[-LATE_STEPS],
                                           local_type=LOCAL_TOOL_CALL, local_seconds=local)]
    report.figure(f"workflow task processing, steps {TURNS - LATE_STEPS + 1}-{TURNS}, "
                  "less the tool call run in it, p50", ms(late), "ms",
                  at_most=MAX_WFT_OVER_FLOOR,
                  baseline_name="a workflow that does nothing with the same commands",
                  baseline=ms([s for events in floors for s in workflow_task_seconds(
                      events, scheduled(events, is_floor)[-LATE_STEPS])]))
    report.figure("workflow task processing of pydantic-ai, same steps, p50",
                  ms([s for events in theirs for s in workflow_task_seconds(
                      events, scheduled(events, is_peer_model)[-LATE_STEPS])]), "ms")
    for who, histories, is_model in (("tether", ours, is_tether_model),
                                     ("pydantic-ai", theirs, is_peer_model)):
        report.figure(f"workflow task dispatch (scheduled to started), {who}, p50",
                      ms([s for events in histories for s in workflow_task_waits(
                          events, scheduled(events, is_model)[1])]), "ms")
    ran, executor_ms = ms(tool_seconds), ms(executor)
    report.figure("tool call's activity, start to output in the worker, p50", ran, "ms",
                  at_most=MAX_TOOL_OVER_EXECUTOR, baseline_name="the executor alone",
                  baseline=executor_ms)
    remote = [span for events in ours for span in activity_spans(events, lambda n: n == "tool_call")]
    here = sum(local_activities(events, LOCAL_TOOL_CALL) for events in ours)
    report.figure("tool calls run on the workflow's worker (no dispatch)",
                  100 * here / max(1, here + len(remote)), "%")
    if remote:
        report.figure("tool activity, dispatch wait on the host queue, p50",
                      ms([s.waited for s in remote]), "ms")
    models = [span for events in ours for span in activity_spans(events, is_tether_model)]
    report.figure("model activity, start to completion, p50", ms([s.ran for s in models]), "ms")
    report.figure("model activity, dispatch wait, p50", ms([s.waited for s in models]), "ms")
