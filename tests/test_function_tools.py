"""Function tools on the worker, end to end through a real worker and dev server: each call is
an activity of its own, arguments are checked against the signature, errors reach the model,
transient failures are retried by Temporal, and the call's idempotency key reaches the tool."""

from __future__ import annotations

import json

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether
from tether.contracts import names
from tether.tools import FunctionTools, ToolLoadError

from tests import tools_decorated
from tests.helpers import wait_for
from tests.scripts import scripted_run
from tests.workflows.histories import activities


def call(name: str, **arguments: object) -> dict:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


ANSWER = {"text": "{{last_output}}"}


async def run(client: Client, queue: str, *turns: dict, **overrides: object):
    handle = await tether.start_run(
        client, scripted_run("use the shop's tools", *turns, **overrides), task_queue=queue)
    return handle, await handle.result()


async def test_a_plain_function_is_a_tool_whose_json_result_the_model_reads(
    temporal_client: Client, worker: str
):
    handle, result = await run(temporal_client, worker, call("lookup_order", order_id="A-1"), ANSWER,
                               tools=["lookup_order"])
    assert result.status == "completed"
    assert json.loads(result.output or "") == {"id": "A-1", "status": "shipped"}
    ran = await activities(temporal_client, handle)
    assert [(a.type, a.summary) for a in ran if a.type == "function_call"] == [
        ("function_call", "step 1 · lookup_order")]
    assert not [a for a in ran if a.type == "acquire_sandbox"]  # no sandbox for a function


async def test_invalid_arguments_are_a_tool_error_naming_the_field_and_the_run_goes_on(
    temporal_client: Client, worker: str
):
    handle, result = await run(temporal_client, worker, call("lookup_order", order_id=5, extra=1),
                               {"text": "sorry"}, tools=["lookup_order"])
    assert result.status == "completed"
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    [error] = step.tool_results
    assert error.exit_code == 2
    assert "invalid arguments for lookup_order" in error.stderr
    assert "order_id: Input should be a valid string" in error.stderr
    assert "extra: Extra inputs are not permitted" in error.stderr


async def test_a_tool_that_raises_reports_its_error_to_the_model(temporal_client: Client, worker: str):
    handle, result = await run(temporal_client, worker, call("explode", reason="the warehouse is closed"),
                               {"text": "it failed"}, tools=["explode"])
    assert result.status == "completed"
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert step.tool_results[0].exit_code == 1
    assert step.tool_results[0].stderr == "RuntimeError: the warehouse is closed"
    ran = [a for a in await activities(temporal_client, handle) if a.type == "function_call"]
    assert [a.attempt for a in ran] == [1]  # a plain exception is not retried


async def test_a_transient_failure_is_retried_by_temporal_until_the_tool_answers(
    temporal_client: Client, worker: str
):
    handle, result = await run(temporal_client, worker, call("flaky_lookup", failures=2), ANSWER,
                               tools=["flaky_lookup"])
    assert result.output == '"answered on attempt 3"'
    [ran] = [a for a in await activities(temporal_client, handle) if a.type == "function_call"]
    assert ran.attempt == 3 and ran.outcome == "completed"


async def test_a_transient_failure_past_the_retries_is_a_tool_error(temporal_client: Client, worker: str):
    handle, result = await run(temporal_client, worker, call("flaky_lookup", failures=9),
                               {"text": "gave up"}, tools=["flaky_lookup"])
    assert result.status == "completed"
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert step.tool_results[0].exit_code == 125
    assert "ConnectionError: attempt 4 could not connect" in step.tool_results[0].stderr


async def test_the_tool_gets_the_calls_idempotency_key(temporal_client: Client, worker: str):
    handle, result = await run(temporal_client, worker, call("open_ticket", title="kettle leaks"),
                               ANSWER, tools=["open_ticket"])
    ticket = json.loads(result.output or "")
    assert ticket["key"] == f"{handle.id}/1/0"
    assert tools_decorated.TICKETS[ticket["key"]].title == "kettle leaks"


async def test_a_function_tool_waits_for_approval_like_any_other(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("open a ticket", call("open_ticket", title="refund"), ANSWER,
                     tools=["open_ticket"], approval={"tools": ["open_ticket"]}),
        task_queue=worker)

    async def waiting() -> bool:
        status = await tether.get_status(temporal_client, handle.id)
        return [(p.tool, p.arguments) for p in status.pending_approvals] == [
            ("open_ticket", {"title": "refund"})]

    await wait_for(waiting, what="the ticket's approval")
    assert f"{handle.id}/1/0" not in tools_decorated.TICKETS  # nothing ran before approval
    await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
    result = await handle.result()
    assert json.loads(result.output or "")["title"] == "refund"


async def test_an_unknown_tool_fails_the_run_at_start_listing_the_tools_there_are(
    temporal_client: Client, worker: str
):
    with pytest.raises(WorkflowFailureError) as failure:
        await run(temporal_client, worker, ANSWER, tools=["shell", "lookup_orders"])
    message = str(failure.value.cause)
    assert "unknown tool(s) 'lookup_orders'" in message
    for name in ("python", "shell", "lookup_order", "open_ticket", "flaky_lookup"):
        assert name in message


def test_a_tools_schema_comes_from_its_signature_and_its_description_from_its_docstring():
    [tool] = FunctionTools.load(["tests.tools_plain:lookup_order"]).by_name.values()
    assert tool.spec.description == "Look an order up by its id; with include_items, list what it holds."
    assert tool.spec.parameters["required"] == ["order_id"]
    assert tool.spec.parameters["properties"]["order_id"]["type"] == "string"
    assert tool.spec.parameters["properties"]["include_items"] == {
        "default": False, "title": "Include Items", "type": "boolean"}
    assert tool.spec.parameters["additionalProperties"] is False


def test_a_module_entry_takes_its_marked_functions_or_else_all_its_public_ones():
    assert FunctionTools.load(["tests.tools_decorated"]).names() == ["flaky_lookup", "open_ticket"]
    assert FunctionTools.load(["tests.tools_plain"]).names() == ["explode", "lookup_order"]


@pytest.mark.parametrize(("entry", "problem"), [
    ("tests.no_such_module", "can't be imported"),
    ("tests.tools_plain:nothing_here", "has no function 'nothing_here'"),
    ("json:dumps", "has no type hint"),
    ("tests.tools_invalid:no_docstring", "has no docstring"),
    ("tests.tools_invalid:variadic", "takes *numbers"),
    ("tests.tools_invalid:shadow", "'shell' is a built-in tool's name"),
])
def test_an_entry_that_cannot_be_a_tool_stops_the_worker_with_the_reason(entry: str, problem: str):
    with pytest.raises(ToolLoadError, match=problem.replace("*", r"\*")):
        FunctionTools.load([entry])
