"""Fuzzed run inputs: a malformed one fails the run in its first workflow task with a
non-retryable `InvalidInput` naming the field; a valid one, however odd its text, runs.

Checked twice: at the contract with many examples (pure pydantic, fast), then through the
real workflow on the suite's worker with a few, since each costs a run.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tether import client as tether
from tether.contracts import AgentRunInput, AgentRunResult, names
from tether.workflows.run_input import parse_input

from tests.fuzz.health import assert_healthy
from tests.fuzz.inputs import mutated_inputs, valid_inputs, with_value
from tests.scripts import turn

QUICK = settings(max_examples=200, deadline=None, derandomize=True, database=None)
THROUGH_RUNS = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture,
                                               HealthCheck.too_slow, HealthCheck.data_too_large])
# A duration past what a timer or timeout can hold: it failed the workflow task forever
# when it reached `timedelta(...)` in the workflow, instead of failing the run.
TOO_LONG = (("sandbox", "tool_timeout_seconds"), {
    **with_value(("sandbox", "tool_timeout_seconds"), 1e308),
    "model": {"provider": "scripted", "script": {"turns": [turn(shell="true"), turn("done")]}}})

# A sandbox no engine can make: it was accepted, and the run failed only at acquisition.
TOO_BIG = (("sandbox", "memory_mb"), with_value(("sandbox", "memory_mb"), 10**30))


def refusal(raw: dict[str, Any]) -> ApplicationError | None:
    try:
        parse_input(raw)
    except ApplicationError as error:
        return error
    return None


def assert_names_the_field(error: ApplicationError, path: tuple[str, ...]) -> None:
    assert (error.type, error.non_retryable) == ("InvalidInput", True)
    assert error.message.startswith("invalid AgentRun input: ")
    # A model-level check names its object and the field it is about ("model: ... script").
    named = ".".join(path) in error.message or (
        ".".join(path[:-1]) + ":" in error.message and repr(path[-1]) in error.message)
    assert named, error.message


@QUICK
@given(mutated=mutated_inputs())
@example(mutated=TOO_LONG)
@example(mutated=TOO_BIG)
def test_a_malformed_input_is_refused_naming_its_field_and_a_valid_one_round_trips(
    mutated: tuple[tuple[str, ...], dict[str, Any]],
):
    path, raw = mutated
    error = refusal(raw)
    if error is not None:
        assert_names_the_field(error, path)
        return
    # Accepted: it must survive what continue-as-new does to it, unchanged.
    parsed = AgentRunInput.model_validate(raw)
    assert AgentRunInput.model_validate(parsed.model_dump(mode="json")) == parsed


@QUICK
@given(valid=valid_inputs())
def test_odd_text_and_far_limits_are_valid_input(valid: tuple[str, dict[str, Any]]):
    _, raw = valid
    assert refusal(raw) is None


@THROUGH_RUNS
@given(mutated=mutated_inputs())
@example(mutated=TOO_LONG)
async def test_a_malformed_input_fails_its_run_in_the_first_workflow_task(
    temporal_client: Client, worker: str, mutated: tuple[tuple[str, ...], dict[str, Any]],
):
    path, raw = mutated
    expected = refusal(raw)
    handle = await temporal_client.start_workflow(
        names.AGENT_RUN, raw, id=f"fuzz-input-{uuid.uuid4().hex[:12]}", task_queue=worker,
        result_type=AgentRunResult)
    if expected is None:
        # Hypothesis made a valid one: it runs like any other.
        assert (await handle.result()).status == "completed"
        await assert_healthy(handle)
        return
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert_names_the_field(cause, path)
    events = [event.event_type async for event in handle.fetch_history_events()]
    assert events.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
    assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    await assert_healthy(handle)


@THROUGH_RUNS
@given(valid=valid_inputs())
async def test_a_valid_input_of_odd_text_runs_and_answers_in_kind(
    temporal_client: Client, worker: str, valid: tuple[str, dict[str, Any]],
):
    answer, raw = valid
    handle = await tether.start_run(temporal_client, raw, task_queue=worker)
    result = await handle.result()
    assert (result.status, result.output) == ("completed", answer)
    await assert_healthy(handle)
