"""Continue-as-new in the middle of a run is invisible: the result, the queries, the budget
and the sandbox carry on as if the run were one execution."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from tether import client as tether

from tests.helpers import sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, executions

USAGE = {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.001}


def appending(count: int) -> list[dict]:
    return [{**turn(shell=f"echo {n} >> steps.log"), "usage": USAGE} for n in range(1, count + 1)]


async def test_a_run_that_continues_as_new_twice_reads_as_one_run(
    temporal_client: Client, worker: str
):
    turns = appending(6)
    turns[3]["tool_calls"][0]["arguments"]["command"] += "; sleep 5"  # step 4: time to look
    handle = await tether.start_run(
        temporal_client,
        scripted_run("long", *turns, {**turn(read_file="steps.log"), "usage": USAGE},
                     {**turn("{{last_output}}"), "usage": USAGE},
                     continue_as_new_after_steps=3),
        task_queue=worker)

    async def in_step_4() -> bool:
        status = await tether.get_status(temporal_client, handle.id)
        return status.step == 4 and status.state == "running_tools"

    await wait_for(in_step_4, what="step 4, in the second execution")
    sandbox = sandboxes_of(handle.id)[0].id
    status = await tether.get_status(temporal_client, handle.id)
    assert (status.budget.steps, status.budget.tokens, status.sandbox) == (4, 60, sandbox[:12])
    assert [s.step for s in await tether.get_transcript(temporal_client, handle.id)] == [1, 2, 3]
    result = await handle.result()

    # New executions started before steps 4 and 7.
    assert len(await executions(temporal_client, handle)) == 3
    assert result.status == "completed"
    assert result.output.split() == ["1", "2", "3", "4", "5", "6"]
    assert result.steps == 8
    assert (result.usage.input_tokens, result.usage.output_tokens) == (80, 40)
    assert result.usage.cost_usd == pytest.approx(0.008)

    status = await tether.get_status(temporal_client, handle.id)
    assert (status.state, status.step, status.budget.steps, status.budget.tokens) == (
        "completed", 8, 8, 120)
    transcript = await tether.get_transcript(temporal_client, handle.id)
    assert [s.step for s in transcript] == list(range(1, 9))

    runs = await activities(temporal_client, handle)
    # One sandbox for the whole run: made once, used by every call, released at the end.
    assert [r.type for r in runs].count("acquire_sandbox") == 1
    assert [r.type for r in runs].count("release_sandbox") == 1
    assert {r.input["container_id"] for r in runs if r.type == "tool_call"} == {sandbox}
    assert runs[-1].type == "release_sandbox"
    assert sandboxes_of(handle.id) == []
    # The first model call ran once: the later executions did not start the run over.
    assert [r.summary for r in runs].count("step 1 · scripted") == 1


async def test_the_budget_holds_across_continue_as_new(temporal_client: Client, worker: str):
    result = await tether.run(
        temporal_client,
        scripted_run("budgeted", *appending(8), turn("never"),
                     budget={"max_steps": 5}, continue_as_new_after_steps=2),
        task_queue=worker)
    assert result.status == "budget_exhausted"
    assert result.stop_reason == "max_steps reached: 5 of 5 steps used"
    assert result.steps == 5
    assert result.usage.input_tokens == 50
