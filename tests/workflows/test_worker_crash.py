"""kill -9 the worker in the middle of a run: a new worker finishes it, no completed step runs
again, and no tool call's side effect happens twice.

The worker runs as a process of its own (`python worker.py`), as in production; the one
that takes over has the same worker id, so it serves the same host queue and reattaches to
the container its predecessor left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle
from tether import client as tether

from tests.helpers import sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, assert_replays, summaries
from tests.workflows.worker_process import WorkerProcess, worker_fleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# Each step appends its number to a file in the sandbox; the last read shows every append.
STEP_SUMMARIES = [
    "step 1 · scripted", "acquire sandbox", "step 1 · shell",
    "step 2 · scripted", "step 2 · shell",
    "step 3 · scripted", "step 3 · read_file",
    "step 4 · scripted",
    "release sandbox",
]


@pytest.fixture
async def workers(
    temporal_client: Client, docker_engine, tmp_path: Path,
) -> AsyncIterator[Callable[[], WorkerProcess]]:
    async with worker_fleet(temporal_client, tmp_path, "crash") as make:
        yield make


async def pending_activity(handle: WorkflowHandle, activity_type: str) -> bool:
    """Whether an activity of this type has been picked up by a worker and is running."""
    description = await handle.describe()
    return any(p.activity_type.name == activity_type
               and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
               for p in description.raw_description.pending_activities)


async def at_step(client: Client, handle: WorkflowHandle, step: int) -> bool:
    return (await tether.get_status(client, handle.id)).step == step


async def crash_and_recover(
    temporal_client: Client, workers: Callable[[], WorkerProcess], run: dict, activity_type: str,
) -> tuple[WorkflowHandle, list]:
    """Starts the run on a worker, kills it -9 while step 2's `activity_type` runs, starts a
    successor with the same worker id, and returns the finished run's activities."""
    first = workers()
    await first.start()
    handle = await tether.start_run(temporal_client, run, task_queue=first.task_queue)
    await wait_for(lambda: at_step(temporal_client, handle, 2), timeout=60, what="step 2")
    await wait_for(lambda: pending_activity(handle, activity_type), timeout=60,
                   what=f"step 2's {activity_type} to run")
    container = sandboxes_of(handle.id)[0].id
    await asyncio.sleep(1)  # well inside the call: its side effect has begun
    await first.kill()

    second = workers()
    await second.start()
    result = await asyncio.wait_for(handle.result(), timeout=150)
    assert result.status == "completed", result
    # Exactly one line per step's append: nothing ran twice, nothing was lost.
    assert result.output.split() == ["1", "2"]
    assert result.steps == 4
    runs = await activities(temporal_client, handle)
    # Every tool call went to the container made before the crash (the one acquisition in
    # the callers' summaries): the successor reattached. Calls on the host queue name it;
    # those that ran on the workflow's worker, as local activities, record no input.
    assert {r.input["container_id"] for r in runs if r.type == "tool_call"} <= {container}
    assert sandboxes_of(handle.id) == []
    return handle, runs


async def test_a_worker_killed_during_a_tool_call_is_replaced_and_the_call_runs_once(
    temporal_client: Client, workers
):
    run = scripted_run(
        "append, crash, append",
        turn(shell="echo 1 >> calls.log"),
        turn(shell="echo 2 >> calls.log; sleep 10"),
        turn(read_file="calls.log"),
        turn("{{last_output}}"),
    )
    handle, runs = await crash_and_recover(temporal_client, workers, run, "tool_call")

    # Each step's activities were scheduled once; only the interrupted call took a second
    # attempt, which the sandbox answered from the first attempt's call, not a new run.
    assert summaries(runs) == STEP_SUMMARIES
    assert all(r.outcome == "completed" for r in runs)
    assert {r.summary: r.attempt for r in runs if r.attempt != 1} == {"step 2 · shell": 2}
    await assert_replays(temporal_client, handle)


async def test_a_worker_killed_during_a_model_call_is_replaced_and_no_step_runs_again(
    temporal_client: Client, workers
):
    slow_turn = {**turn(shell="echo 2 >> calls.log"), "delay_seconds": 10}
    run = scripted_run(
        "append, think slowly, append",
        turn(shell="echo 1 >> calls.log"),
        slow_turn,
        turn(read_file="calls.log"),
        turn("{{last_output}}"),
    )
    handle, runs = await crash_and_recover(temporal_client, workers, run, "model_call")

    assert summaries(runs) == STEP_SUMMARIES
    assert all(r.outcome == "completed" for r in runs)
    assert {r.summary: r.attempt for r in runs if r.attempt != 1} == {"step 2 · scripted": 2}
    await assert_replays(temporal_client, handle)
