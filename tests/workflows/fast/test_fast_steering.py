"""People steer a run: approve or deny tool calls (or let the wait run out), cancel it by
update or through Temporal, send it a message, raise its budget. Stand-in activities."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.client import WorkflowUpdateFailedError as UpdateFailed
from temporalio.exceptions import CancelledError
from tether.contracts import Message, NewMessage, names

from tests.workflows.fast.standins import (
    StandIns,
    eventually,
    serving,
    start,
    status,
    transcript,
    turn,
)

GUARDED = {"approval": {"tools": ["shell"]}}


def awaiting(handle: WorkflowHandle[Any, Any], call_id: str):
    async def check() -> bool:
        now = await status(handle)
        return now.state == "awaiting_approval" and [p.call_id for p in now.pending_approvals] == [call_id]
    return check


async def tool_running(fakes: StandIns) -> None:
    await asyncio.wait_for(fakes.tool_started.wait(), timeout=10)


async def test_an_approved_call_runs_once_approved(fast_client: Client):
    fakes = StandIns(turn(shell="make deploy"), turn("deployed"))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, **GUARDED)
        await eventually(awaiting(handle, "1-0"), "the approval request")
        pending = (await status(handle)).pending_approvals[0]
        assert (pending.tool, pending.arguments) == ("shell", {"command": "make deploy"})
        assert fakes.tool_calls == []  # nothing runs before a person says so
        approved = await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
        assert approved == "call 1-0 (shell) approved"
        result = await handle.result()
        final = await status(handle)

    assert (result.status, result.output) == ("completed", "deployed")
    assert fakes.keys == [f"{handle.id}/1/0"]
    assert final.pending_approvals == []


async def test_a_denied_call_does_not_run_and_the_model_reads_the_denial(fast_client: Client):
    fakes = StandIns(turn(shell="rm -rf data"), turn("understood"))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, **GUARDED)
        await eventually(awaiting(handle, "1-0"), "the approval request")
        denied = await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", False, "too risky"])
        result = await handle.result()
        steps = await transcript(handle)

    assert denied == "call 1-0 (shell) denied"
    assert (result.status, result.output) == ("completed", "understood")
    assert (fakes.tool_calls, fakes.acquired, fakes.released) == ([], [], [])
    [told] = fakes.model_calls[1].append
    assert told.message is not None
    assert (told.message.role, told.message.tool_call_id) == ("tool", "call-1-0")
    assert json.loads(told.message.content or "")["stderr"] == "a person denied this call: too risky"
    assert (steps[0].tool_results[0].exit_code, steps[0].tool_results[0].stderr) == (
        126, "a person denied this call: too risky")


async def test_an_approval_that_does_not_come_in_time_counts_as_a_denial(fast_client: Client):
    fakes = StandIns(turn(shell="make deploy"), turn("gave up"))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes,
                             approval={"tools": ["shell"], "timeout_seconds": 0.5})
        result = await handle.result()
        steps = await transcript(handle)

    assert (result.status, result.output) == ("completed", "gave up")
    assert fakes.tool_calls == []
    assert steps[0].tool_results[0].exit_code == 126
    assert steps[0].tool_results[0].stderr == "no person approved this call within 0.5 s, so it did not run"


async def test_approving_a_call_that_is_not_waiting_is_rejected_by_the_validator(fast_client: Client):
    fakes = StandIns(turn(shell="make deploy"), turn("deployed"))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, **GUARDED)
        await eventually(awaiting(handle, "1-0"), "the approval request")
        with pytest.raises(UpdateFailed) as failure:
            await handle.execute_update(names.UPDATE_APPROVE, args=["7-3", True])
        assert "no call '7-3' is waiting for approval (waiting: 1-0)" in str(failure.value.cause)
        assert await awaiting(handle, "1-0")()  # the real request still waits
        await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
        result = await handle.result()

    assert (result.status, result.output) == ("completed", "deployed")
    assert fakes.keys == [f"{handle.id}/1/0"]


async def test_the_cancel_update_stops_a_tool_call_in_flight_and_releases_the_sandbox(fast_client: Client):
    fakes = StandIns(turn(shell="sleep 600"), turn("never reached"), hold_tools=True)
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes)
        await tool_running(fakes)
        assert await handle.execute_update(names.UPDATE_CANCEL, "enough") == "cancelling at step 1: enough"
        result = await handle.result()
        final = await status(handle)
        steps = await transcript(handle)

    assert (result.status, result.stop_reason, result.steps) == ("cancelled", "cancelled: enough", 1)
    assert fakes.cancelled_tools == [f"{handle.id}/1/0"]
    assert fakes.released == ["box-1"]
    assert len(fakes.model_calls) == 1
    assert (final.state, final.sandbox) == ("cancelled", None)
    assert "interrupted while its tool calls ran" in (steps[0].note or "")


async def test_a_temporal_cancel_stops_the_tool_call_and_still_releases_the_sandbox(fast_client: Client):
    fakes = StandIns(turn(shell="sleep 600"), turn("never reached"), hold_tools=True)
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes)
        await tool_running(fakes)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        final = await status(handle)
        described = await handle.describe()

    assert isinstance(failure.value.cause, CancelledError)
    assert described.status == WorkflowExecutionStatus.CANCELED
    assert fakes.cancelled_tools == [f"{handle.id}/1/0"]
    assert fakes.released == ["box-1"]
    assert (final.state, final.sandbox) == ("cancelled", None)


async def test_a_message_sent_while_tools_run_reaches_the_next_model_call_after_their_results(
    fast_client: Client,
):
    fakes = StandIns(turn(shell="make"), turn("built, and the logs are clean"), hold_tools=True)
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes)
        await tool_running(fakes)
        queued = await handle.execute_update(names.UPDATE_SEND_MESSAGE, "also check the logs")
        with pytest.raises(UpdateFailed) as empty:
            await handle.execute_update(names.UPDATE_SEND_MESSAGE, "   ")
        fakes.let_tools_finish()
        result = await handle.result()

    assert queued == "message queued for step 2"
    assert "the message is empty" in str(empty.value.cause)
    assert (result.status, result.output) == ("completed", "built, and the logs are clean")
    assert fakes.model_calls[0].append == []
    assert fakes.model_calls[1].append == [
        NewMessage(ref=f"result:{handle.id}/1/0"),
        NewMessage(message=Message(role="user", content="also check the logs")),
    ]


async def test_extending_max_steps_lets_a_run_continue_and_a_bad_field_is_rejected(fast_client: Client):
    fakes = StandIns(turn(shell="make"), turn("done"), hold_tools=True)
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, budget={"max_steps": 1})
        await tool_running(fakes)
        with pytest.raises(UpdateFailed) as bad_field:
            await handle.execute_update(names.UPDATE_EXTEND_BUDGET, {"max_turns": 1})
        with pytest.raises(UpdateFailed) as bad_amount:
            await handle.execute_update(names.UPDATE_EXTEND_BUDGET, {"max_steps": -1})
        raised = await handle.execute_update(names.UPDATE_EXTEND_BUDGET, {"max_steps": 2})
        during = await status(handle)
        fakes.let_tools_finish()
        result = await handle.result()

    assert "'max_turns' is not a limit" in str(bad_field.value.cause)
    assert "max_steps must be raised by a positive number, got -1" in str(bad_amount.value.cause)
    assert raised == {"max_steps": 3}
    assert during.budget.max_steps == 3
    assert (result.status, result.steps, result.output) == ("completed", 2, "done")
    assert [call.step for call in fakes.model_calls] == [1, 2]


async def test_an_answer_given_on_the_last_step_is_kept_when_a_message_arrives_during_it(
    fast_client: Client,
):
    fakes = StandIns(turn("done"), hold_models=True)
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, budget={"max_steps": 1})
        await asyncio.wait_for(fakes.model_started.wait(), timeout=10)
        await handle.execute_update(names.UPDATE_SEND_MESSAGE, "thanks")
        fakes.let_models_finish()
        result = await handle.result()
        steps = await transcript(handle)

    assert steps[0].text == "done"  # the model did answer
    assert result.output == "done"  # not lost for want of a turn to read the message
