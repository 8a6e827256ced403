"""An application steers a run with one typed call each, all exported from `tether`: deny,
cancel, send a message, extend the budget. Real dev server and worker, the scripted model;
each run waits for an approval, so none of them needs a sandbox."""

from __future__ import annotations

from typing import Any

import pytest
import tether
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from tether import client
from tether.contracts import names
from tether.workflows.agent import AgentRun

from tests.helpers import wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, conversation

GUARDED = {"approval": {"tools": ["shell"]}}


async def waiting_run(temporal_client: Client, worker: str, *then: dict[str, Any],
                      **overrides: Any) -> WorkflowHandle[Any, tether.AgentRunResult]:
    """A run whose first call waits for a person."""
    handle = await tether.start_run(
        temporal_client, scripted_run("steered", turn(shell="echo ran"), *then, **GUARDED, **overrides),
        task_queue=worker)

    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, handle.id)).pending_approvals)

    await wait_for(waiting, what="the call to wait for approval")
    return handle


async def test_deny_refuses_a_waiting_call_and_the_model_reads_the_reason(
    temporal_client: Client, worker: str
):
    handle = await waiting_run(temporal_client, worker, turn("understood"))
    denied = await tether.deny(temporal_client, handle.id, "1-0", reason="too risky")
    assert denied == "call 1-0 (shell) denied"
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "understood")
    step = (await tether.get_transcript(temporal_client, handle.id))[0]
    assert step.tool_results[0].stderr == "a person denied this call: too risky"


async def test_cancel_stops_a_run_with_the_reason_given(temporal_client: Client, worker: str):
    handle = await waiting_run(temporal_client, worker, turn("never"))
    assert await tether.cancel(temporal_client, handle.id, reason="enough") == "cancelling at step 1: enough"
    result = await handle.result()
    assert (result.status, result.stop_reason) == ("cancelled", "cancelled: enough")


async def test_send_message_reaches_the_model_at_its_next_step(temporal_client: Client, worker: str):
    handle = await waiting_run(temporal_client, worker, turn("heard you"))
    queued = await tether.send_message(temporal_client, handle.id, "use the blue one")
    assert queued == "message queued for step 2"
    await tether.deny(temporal_client, handle.id, "1-0")
    assert (await handle.result()).output == "heard you"
    messages = conversation(await activities(temporal_client, handle))
    assert ("user", "use the blue one") in [(m.role, m.content) for m in messages]


async def test_extend_raises_the_limits_named_and_returns_them_as_they_now_are(
    temporal_client: Client, worker: str
):
    handle = await waiting_run(temporal_client, worker, turn("never"), budget={"max_steps": 2})
    assert await tether.extend(temporal_client, handle.id, max_steps=3) == {"max_steps": 5}
    assert (await tether.get_status(temporal_client, handle.id)).budget.max_steps == 5
    await tether.cancel(temporal_client, handle.id)


async def test_a_steering_call_the_run_refuses_raises_saying_why(temporal_client: Client, worker: str):
    handle = await waiting_run(temporal_client, worker, turn("never"))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await tether.extend(temporal_client, handle.id)
    assert "name at least one limit" in str(refused.value.cause)
    await tether.cancel(temporal_client, handle.id)
    assert (await handle.result()).status == "cancelled"


@pytest.mark.parametrize("operation", [
    "start_run", "get_run", "get_status", "get_transcript", "watch", "approve", "deny", "cancel",
    "send_message", "extend", "get_artifacts", "download_artifacts", "list_runs",
])
def test_every_operation_on_a_run_is_exported_from_tether(operation: str):
    assert operation in tether.__all__
    assert getattr(tether, operation) is getattr(client, operation)


def test_the_run_answers_to_the_names_its_contract_defines():
    definition = workflow._Definition.must_from_class(AgentRun)
    assert definition.name == names.AGENT_RUN
    assert set(definition.queries) == {names.QUERY_STATUS, names.QUERY_PROGRESS,
                                       names.QUERY_TRANSCRIPT, names.QUERY_ARTIFACTS}
    assert set(definition.updates) == {names.UPDATE_APPROVE, names.UPDATE_CANCEL,
                                       names.UPDATE_SEND_MESSAGE, names.UPDATE_EXTEND_BUDGET}
    assert set(definition.signals) == {names.SIGNAL_CHILD_WAITING}
