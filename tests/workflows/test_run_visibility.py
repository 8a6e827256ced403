"""What a run shows people while it works and after: the `status` and `transcript` queries,
the search attributes, the Web UI's current details and each activity's summary."""

from __future__ import annotations

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey
from tether import client as tether
from tether.contracts import names
from tether.contracts.digests import arguments_digest

from tests.helpers import sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, summaries, tool_calls

STATUS = SearchAttributeKey.for_keyword(names.SEARCH_STATUS)
STEPS = SearchAttributeKey.for_int(names.SEARCH_STEPS)
COST = SearchAttributeKey.for_float(names.SEARCH_COST_USD)
MODEL = SearchAttributeKey.for_keyword(names.SEARCH_MODEL)
USAGE = {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.01}


async def current_details(handle: WorkflowHandle) -> str:
    """What the Web UI shows as the run's current details."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def test_status_shows_state_step_usage_against_every_limit_approvals_sandbox_and_last_error(
    temporal_client: Client, worker: str
):
    turns = [
        {**turn(shell="echo one"), "usage": USAGE},
        {**turn(python="print(2)"), "usage": USAGE},
        {**turn("done"), "usage": USAGE},
    ]
    handle = await tether.start_run(
        temporal_client,
        {"task": "status",
         # The primary knows only the first turn; at step 2 it fails and the fallback serves.
         "model": {"provider": "scripted", "script": {"turns": turns[:1]}},
         "fallback_models": [{"provider": "scripted", "script": {"turns": turns}}],
         "approval": {"tools": ["python"]},
         "budget": {"max_steps": 5, "max_tokens": 1000, "max_cost_usd": 1.0, "max_seconds": 600}},
        task_queue=worker)

    async def awaiting_approval() -> bool:
        return (await tether.get_status(temporal_client, handle.id)).state == "awaiting_approval"

    await wait_for(awaiting_approval, what="the approval request")
    status = await tether.get_status(temporal_client, handle.id)
    assert status.step == 2
    assert (status.budget.steps, status.budget.max_steps) == (2, 5)
    assert (status.budget.tokens, status.budget.max_tokens) == (240, 1000)
    assert (status.budget.cost_usd, status.budget.max_cost_usd) == (0.02, 1.0)
    assert 0 < status.budget.seconds < status.budget.max_seconds == 600
    assert status.usage.input_tokens == 200
    assert [(p.call_id, p.tool, p.arguments) for p in status.pending_approvals] == [
        ("2-0", "python", {"code": "print(2)"})]
    container = sandboxes_of(handle.id)[0]
    assert status.sandbox == container.id[:12]
    assert status.last_error.startswith("scripted failed: ")
    assert "the script has 1 turn(s)" in status.last_error
    details = await current_details(handle)
    assert "**awaiting_approval** · step 2" in details
    assert "- tokens: 240 of 1000" in details
    assert "**Waiting for approval:**" in details
    assert "`2-0` **python** ` {\"code\": \"print(2)\"} `" in details
    digest = arguments_digest({"code": "print(2)"})
    assert f"digest: `{digest}`" in details
    assert f"`tether approve {handle.id} 2-0 --digest {digest}`" in details

    await handle.execute_update(names.UPDATE_APPROVE, args=["2-0", True])
    assert (await handle.result()).status == "completed"
    final = await tether.get_status(temporal_client, handle.id)
    assert (final.state, final.step, final.pending_approvals, final.sandbox) == (
        "completed", 3, [], None)


async def test_transcript_shows_every_step_with_text_tool_calls_and_results(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("transcript",
                     turn("looking", shell="echo hello"),
                     turn("reading", read_file="missing.txt"),
                     turn("done: {{last_output}}")),
        task_queue=worker)
    assert (await handle.result()).status == "completed"
    steps = await tether.get_transcript(temporal_client, handle.id)
    assert [s.step for s in steps] == [1, 2, 3]
    assert [s.text for s in steps] == ["looking", "reading", "done: "]
    assert steps[0].tool_calls[0].name == "shell"
    assert steps[0].tool_calls[0].arguments == {"command": "echo hello"}
    assert (steps[0].tool_results[0].exit_code, steps[0].tool_results[0].stdout) == (0, "hello\n")
    # A tool that fails in the sandbox is a result like any other.
    assert steps[1].tool_results[0].exit_code == 1
    assert "missing.txt" in steps[1].tool_results[0].stderr
    assert steps[2].tool_calls == [] and steps[2].usage.output_tokens > 0


async def test_a_long_tool_output_reaches_the_model_whole_but_history_and_transcript_hold_it_capped(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("long", turn(python="print('x' * 30000)"), turn("{{last_output}}")),
        task_queue=worker)
    result = await handle.result()
    assert result.output == "x" * 30000
    stdout = (await tether.get_transcript(temporal_client, handle.id))[0].tool_results[0].stdout
    assert len(stdout) < 2100 and "characters ...]" in stdout
    [call] = tool_calls(await activities(temporal_client, handle))
    assert len(call.result["result"]["stdout"]) < 2100


async def test_search_attributes_follow_the_run_and_activities_are_summarised_by_step(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("visible",
                     {**turn(shell="sleep 5"), "usage": USAGE},
                     {**turn(python="print(1)", write_file={"path": "a", "content": "b"}),
                      "usage": USAGE},
                     {**turn("done"), "usage": USAGE}),
        task_queue=worker)

    async def running_tools() -> bool:
        attributes = (await handle.describe()).typed_search_attributes
        return attributes.get(STATUS) == "running_tools"

    await wait_for(running_tools, what=f"{STATUS.name} = running_tools")
    attributes = (await handle.describe()).typed_search_attributes
    assert (attributes.get(STEPS), attributes.get(MODEL)) == (1, "scripted")
    assert attributes.get(COST) == pytest.approx(0.01)

    await handle.result()
    attributes = (await handle.describe()).typed_search_attributes
    assert (attributes.get(STATUS), attributes.get(STEPS)) == ("completed", 3)
    assert attributes.get(COST) == pytest.approx(0.03)

    async def listed() -> bool:
        query = f"WorkflowId = '{handle.id}' AND {STATUS.name} = 'completed' AND {STEPS.name} = 3"
        return [e.id async for e in temporal_client.list_workflows(query)] == [handle.id]

    await wait_for(listed, what="the run to be found by its search attributes")

    # The task is stored by a local activity, which has no scheduled event to summarise; the
    # calls that ran on the workflow's worker are summarised on their markers, in the order
    # they finished (step 2's two ran at once). Step 1's call outran the hand-off and ran on
    # the host queue.
    found = summaries(await activities(temporal_client, handle))
    assert found[:4] == ["step 1 · scripted", "acquire sandbox", "step 1 · shell", "step 2 · scripted"]
    assert sorted(found[4:6]) == ["step 2 · python", "step 2 · write_file"]
    assert found[6:] == ["step 3 · scripted", "release sandbox"]
