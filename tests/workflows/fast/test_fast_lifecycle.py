"""A run's life across executions and failures: continue-as-new carrying the sandbox, a
lost sandbox replaced, and an invalid input failing at once. Stand-in activities."""

from __future__ import annotations

import time
import uuid

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowQueryFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from tether import client as tether
from tether.contracts import RunStatus, names

from tests.workflows.fast.standins import StandIns, run_input, serving, start, status, transcript, turn


async def test_a_run_that_continues_as_new_every_two_steps_completes_and_keeps_its_sandbox(
    fast_client: Client,
):
    fakes = StandIns(*(turn(shell=f"step {n}") for n in range(1, 5)), turn("done in five"))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, continue_as_new_after_steps=2)
        result = await handle.result()
        final = await status(handle)
        first = await fast_client.get_workflow_handle(
            handle.id, run_id=handle.first_execution_run_id).describe()
        latest = await handle.describe()

    assert (result.status, result.steps, result.output) == ("completed", 5, "done in five")
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert latest.run_id != handle.first_execution_run_id
    assert [call.step for call in fakes.model_calls] == [1, 2, 3, 4, 5]
    assert fakes.keys == [f"{handle.id}/{step}/0" for step in range(1, 5)]
    assert len(fakes.started) == 1  # the conversation is carried, not restarted
    assert len(fakes.acquired) == 1  # so is the sandbox
    assert {call.container_id for call in fakes.tool_calls} == {"box-1"}
    assert fakes.released == ["box-1"]  # once, at the very end
    assert (final.state, final.step) == ("completed", 5)


async def test_a_lost_sandbox_is_replaced_and_the_call_runs_again_in_the_new_one(fast_client: Client):
    fakes = StandIns(turn(shell="make"), turn("built"), lost=("box-1",))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes)
        result = await handle.result()
        final = await status(handle)
        steps = await transcript(handle)

    assert (result.status, result.output) == ("completed", "built")
    assert len(fakes.acquired) == 2
    assert [call.container_id for call in fakes.tool_calls] == ["box-1", "box-2"]
    assert fakes.keys == [f"{handle.id}/1/0"] * 2  # the same call, so the same key
    assert final.last_error == (
        "sandbox on stand-in lost (SandboxGone: container box-1 is gone); continuing in a new sandbox")
    assert steps[0].tool_results[0].exit_code == 0
    assert steps[0].tool_results[0].stdout == "ran 'make' in box-2"
    assert fakes.released == ["box-1", "box-2"]  # the lost one at once, the other at the end


async def test_two_calls_that_lose_the_same_sandbox_at_once_replace_it_once(fast_client: Client):
    fakes = StandIns(turn(shell=["make", "make test"]), turn("built and tested"), lost=("box-1",))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes)
        result = await handle.result()

    assert (result.status, result.output) == ("completed", "built and tested")
    assert len(fakes.acquired) == 2
    assert sorted((call.idempotency_key, call.container_id) for call in fakes.tool_calls) == [
        (f"{handle.id}/1/0", "box-1"), (f"{handle.id}/1/0", "box-2"),
        (f"{handle.id}/1/1", "box-1"), (f"{handle.id}/1/1", "box-2"),
    ]
    assert sorted(fakes.released) == ["box-1", "box-2"]  # box-1 once, though both calls lost it


async def test_an_invalid_input_fails_the_run_at_once_with_a_non_retryable_error(fast_client: Client):
    fakes = StandIns(turn("never reached"))
    raw = run_input(fakes, task="", budget={"max_steps": 0})
    async with serving(fast_client, fakes):
        began = time.monotonic()
        handle = await fast_client.start_workflow(
            names.AGENT_RUN, raw, id=f"fast-invalid-{uuid.uuid4().hex[:12]}", task_queue=fakes.task_queue)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        took = time.monotonic() - began
        events = [event.event_type async for event in handle.fetch_history_events()]
        shown = await tether.get_status(fast_client, handle.id)  # how it ended, not "starting"

    error = failure.value.cause
    assert isinstance(error, ApplicationError)
    assert (error.type, error.non_retryable) == ("InvalidInput", True)
    assert error.message.startswith("invalid AgentRun input: ")
    assert "task: String should have at least 1 character" in error.message
    assert "budget.max_steps: Input should be greater than or equal to 1" in error.message
    assert took < 5
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events  # failed the run, not its task
    assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    assert (fakes.started, fakes.model_calls, fakes.acquired) == ([], [], [])
    assert (shown.state, shown.step) == ("failed", 0)
    assert shown.last_error is not None and "task: String should have at least 1" in shown.last_error


@workflow.defn(name=names.AGENT_RUN, sandboxed=False)
class UnreadableRun:
    """A run that failed, on a worker that can't answer its status: as a worker that can no
    longer replay a run, or decrypt it, answers."""

    @workflow.run
    async def run(self, raw: dict) -> None:
        raise ApplicationError("it went wrong at step 7", non_retryable=True)

    @workflow.query(name=names.QUERY_STATUS)
    def status(self) -> RunStatus:
        raise RuntimeError("this worker cannot replay the run")


async def test_a_closed_run_whose_status_cannot_be_read_says_why_rather_than_never_started(
    fast_client: Client,
):
    queue = f"fast-unreadable-{uuid.uuid4().hex[:8]}"
    async with Worker(fast_client, task_queue=queue, workflows=[UnreadableRun]):
        handle = await fast_client.start_workflow(
            names.AGENT_RUN, {"task": "t"}, id=f"{queue}-run", task_queue=queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        with pytest.raises(WorkflowQueryFailedError, match="this worker cannot replay the run"):
            await tether.get_status(fast_client, handle.id)
