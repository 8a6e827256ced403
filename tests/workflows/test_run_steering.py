"""People steer a run while it works: approve or deny tool calls, cancel it, send it a
message. Real dev server, real sandboxes, the scripted model."""

from __future__ import annotations

import json

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from tether import client as tether
from tether.contracts import names

from tests.helpers import sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, conversation, summaries

GUARDED = {"approval": {"tools": ["shell"]}}


async def awaiting(client: Client, workflow_id: str, call_id: str) -> bool:
    status = await tether.get_status(client, workflow_id)
    return status.state == "awaiting_approval" and [
        p.call_id for p in status.pending_approvals] == [call_id]


async def running_tools(client: Client, workflow_id: str) -> bool:
    return (await tether.get_status(client, workflow_id)).state == "running_tools"


async def test_an_approved_call_runs(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("guarded", turn(shell="echo ran"), turn("{{last_output}}"), **GUARDED),
        task_queue=worker)
    await wait_for(lambda: awaiting(temporal_client, handle.id, "1-0"), what="an approval request")
    pending = (await tether.get_status(temporal_client, handle.id)).pending_approvals[0]
    assert (pending.tool, pending.arguments) == ("shell", {"command": "echo ran"})
    approved = await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
    assert approved == "call 1-0 (shell) approved"
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "ran")


async def test_a_denied_call_does_not_run_and_the_model_reads_the_denial(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("guarded", turn(shell="rm -rf data"), turn("understood"), **GUARDED),
        task_queue=worker)
    await wait_for(lambda: awaiting(temporal_client, handle.id, "1-0"), what="an approval request")
    await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", False, "too risky"])
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "understood")

    step = (await tether.get_transcript(temporal_client, handle.id))[0]
    assert step.tool_results[0].exit_code == 126
    assert step.tool_results[0].stderr == "a person denied this call: too risky"
    runs = await activities(temporal_client, handle)
    assert not [r for r in runs if r.type in ("tool_call", "acquire_sandbox")]
    tool_message = next(m for m in conversation(runs) if m.role == "tool")
    assert json.loads(tool_message.content)["stderr"] == "a person denied this call: too risky"


async def test_an_approval_that_does_not_come_in_time_counts_as_a_denial(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("guarded", turn(shell="echo ran"), turn("gave up"),
                     approval={"tools": ["shell"], "timeout_seconds": 1}),
        task_queue=worker)
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "gave up")
    step = (await tether.get_transcript(temporal_client, handle.id))[0]
    assert step.tool_results[0].exit_code == 126
    assert step.tool_results[0].stderr == "no person approved this call within 1 s, so it did not run"
    assert "step 1 · shell" not in summaries(await activities(temporal_client, handle))


async def test_approving_a_call_that_is_not_waiting_fails_the_update(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("guarded", turn(shell="echo ran"), turn("{{last_output}}"), **GUARDED),
        task_queue=worker)
    await wait_for(lambda: awaiting(temporal_client, handle.id, "1-0"), what="an approval request")
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(names.UPDATE_APPROVE, args=["7-3", True])
    assert "no call '7-3' is waiting for approval (waiting: 1-0)" in str(failure.value.cause)
    await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
    assert (await handle.result()).output == "ran"


async def tool_call_started(handle) -> bool:
    """The tool activity itself is running (not just the sandbox being made for it)."""
    pending = (await handle.describe()).raw_description.pending_activities
    return any(p.activity_type.name == "tool_call" and p.attempt >= 1 and p.last_started_time.seconds
               for p in pending)


async def test_cancel_during_a_tool_call_stops_it_and_releases_the_sandbox(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("wait", turn(shell="sleep 600"), turn("never")),
        task_queue=worker)
    await wait_for(lambda: tool_call_started(handle), what="the tool call to start")
    assert await handle.execute_update(names.UPDATE_CANCEL, "enough") == "cancelling at step 1: enough"
    result = await handle.result()
    assert (result.status, result.stop_reason, result.steps) == ("cancelled", "cancelled: enough", 1)
    assert result.seconds < 60
    runs = await activities(temporal_client, handle)
    assert next(r for r in runs if r.summary == "step 1 · shell").outcome == "canceled"
    assert sandboxes_of(handle.id) == []
    step = (await tether.get_transcript(temporal_client, handle.id))[0]
    assert "interrupted while its tool calls ran" in step.note


async def test_a_message_sent_while_tools_run_reaches_the_model_after_their_results(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("listen", turn(shell="sleep 6"), turn("heard you")),
        task_queue=worker)
    await wait_for(lambda: running_tools(temporal_client, handle.id), what="the tool call")
    queued = await handle.execute_update(names.UPDATE_SEND_MESSAGE, "use the blue one")
    assert queued == "message queued for step 2"
    result = await handle.result()
    assert result.output == "heard you"

    messages = conversation(await activities(temporal_client, handle))
    # Providers need each tool result right after the call it answers; the person's
    # message follows it, and the model's next turn answers both.
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "user", "assistant"]
    assert messages[4].content == "use the blue one"


async def test_send_message_rejects_an_empty_or_huge_message(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client, scripted_run("listen", turn(shell="sleep 5"), turn("done")),
        task_queue=worker)
    for text, problem in [("   ", "the message is empty"), ("x" * 40_000, "the limit is 32000")]:
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update(names.UPDATE_SEND_MESSAGE, text)
        assert problem in str(failure.value.cause)
    assert (await handle.result()).status == "completed"


async def test_updates_sent_the_moment_a_run_starts_are_not_lost(temporal_client: Client, worker: str):
    # They can reach the run in its first workflow task, before its main loop begins.
    handle = await tether.start_run(
        temporal_client, scripted_run("early", turn("first"), turn("second")),
        task_queue=worker)
    queued = await handle.execute_update(names.UPDATE_SEND_MESSAGE, "hello early")
    # Whether the first model call had begun when the message arrived is a race; either
    # way the model reads it, and answers after reading it.
    assert queued in ("message queued for step 1", "message queued for step 2")
    result = await handle.result()
    messages = conversation(await activities(temporal_client, handle))
    if queued.endswith("step 1"):
        assert result.output == "first"
        assert [(m.role, m.content) for m in messages[1:3]] == [
            ("user", "early"), ("user", "hello early")]
    else:
        assert result.output == "second"
        assert [(m.role, m.content) for m in messages[1:4]] == [
            ("user", "early"), ("assistant", "first"), ("user", "hello early")]
