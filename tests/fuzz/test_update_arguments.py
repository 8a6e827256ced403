"""Fuzzed update arguments: `approve`, `cancel`, `send_message` and `extend_budget` sent
wrong types, huge or odd text, deep nesting and the wrong number of arguments. Each is
rejected with an error that says what is wrong (or, where it is valid, accepted), never a
failing workflow task; after each, the run is healthy and still waiting where it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticSerializationError
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from tether import client as tether
from tether.contracts import names
from tether.contracts.run import LONGEST_SECONDS

from tests.fuzz.health import assert_healthy, status
from tests.fuzz.strategies import ANY_JSON, deep_values, huge_text, odd_text
from tests.helpers import wait_for
from tests.scripts import scripted_run, turn

UPDATES = ("approve", "cancel", "send_message", "extend_budget")
ARGUMENT: st.SearchStrategy[Any] = st.one_of(
    ANY_JSON, odd_text(), huge_text(max_chars=100_000), deep_values(max_depth=300),
    st.sampled_from([None, "1-0", True, 0, -5, 1e308, {"max_steps": None}, {"max_seconds": 1e308},
                     {"max_steps": 1.5}, {"max_tokens": -1}, {"no_such_limit": 1}]))
PENDING = "1-0"
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
# What the SDK's own decoding says, and the messages of tether's validators: a person reads
# these. A Python error's name in the message means a handler tripped on the value.
INTERNAL_ERRORS = ("AttributeError", "KeyError", "NoneType", "IndexError", "object has no")


@pytest.fixture(scope="module")
async def waiting_run(temporal_client: Client, worker: str) -> AsyncIterator[WorkflowHandle]:
    """A run whose first tool call waits for approval, for as long as the fuzzing lasts."""
    handle = await tether.start_run(temporal_client, scripted_run(
        "wait", turn(shell="echo approved"), turn("{{last_output}}"),
        approval={"tools": ["shell"]}), task_queue=worker)

    async def waiting() -> bool:
        return (await status(handle)).state == "awaiting_approval"

    await wait_for(waiting, what="the approval request")
    yield handle
    await handle.execute_update(names.UPDATE_APPROVE, args=[PENDING, True])
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "approved")
    await assert_healthy(handle)


def would_act(name: str, args: list[Any]) -> bool:
    """A valid cancel, or a decision on the waiting call, would end the wait the fuzzing
    needs: those are the cases the steering tests cover."""
    if name == "cancel":
        return not args or (len(args) == 1 and isinstance(args[0], str) and len(args[0]) <= 32_000)
    if name == "approve":
        return bool(args) and args[0] == PENDING and not (len(args) > 1 and args[1] is None)
    return False


@FUZZ
@given(name=st.sampled_from(UPDATES), args=st.lists(ARGUMENT, max_size=4))
@example(name="send_message", args=[None])    # was an AttributeError from the validator
@example(name="cancel", args=[None])          # was accepted, and cancelled nothing
@example(name="approve", args=[PENDING, None])  # was accepted, and decided nothing
@example(name="extend_budget", args=[{"max_seconds": 1e308}])  # was a deadline never armed
@example(name="cancel", args=["x" * 100_000])   # would have put 100 kB in the run's result
async def test_hostile_update_arguments_are_refused_clearly_and_the_run_keeps_waiting(
    temporal_client: Client, waiting_run: WorkflowHandle, name: str, args: list[Any],
):
    assume(not would_act(name, args))
    try:
        await waiting_run.execute_update(name, args=args)
    except PydanticSerializationError:
        pass  # too deep for the client to encode: nothing reached the run
    except WorkflowUpdateFailedError as rejected:
        cause = rejected.cause
        assert isinstance(cause, ApplicationError) and cause.message
        assert not any(marker in cause.message for marker in INTERNAL_ERRORS), cause.message
    else:
        # Accepted: only what is valid for a waiting run (a message, a raised limit).
        assert name in ("send_message", "extend_budget"), (name, args)
    now = await status(waiting_run)
    assert (now.state, [p.call_id for p in now.pending_approvals]) == ("awaiting_approval", [PENDING])
    assert (now.budget.max_seconds or 0) <= LONGEST_SECONDS  # a deadline a timer can hold
    await assert_healthy(waiting_run)


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reason=odd_text(min_size=1, max_size=200))
async def test_a_cancel_with_an_odd_reason_ends_the_run_with_that_reason(
    temporal_client: Client, worker: str, reason: str,
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "slow", {"text": "late", "delay_seconds": 30}), task_queue=worker)
    await handle.execute_update(names.UPDATE_CANCEL, args=[reason])
    result = await handle.result()
    assert (result.status, result.stop_reason) == ("cancelled", f"cancelled: {reason}")
    await assert_healthy(handle)
