"""The foundation, end to end: real dev server, real worker, real Docker sandboxes."""

from __future__ import annotations

import json
import os
import re
import sys
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether
from tether.contracts import names
from tether.embedded.temporal import temporal_binary

from tests.helpers import ROOT, run_command, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn


def primes_below(limit: int) -> tuple[int, int]:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit, n)))
    primes = [n for n in range(limit) if sieve[n]]
    return len(primes), sum(primes)


async def test_demo_agent_answers_with_a_figure_computed_in_the_container(
    temporal_client: Client, worker: str
):
    script = json.loads((ROOT / "examples" / "demo.json").read_text())
    result = await tether.run(
        temporal_client,
        {"task": "primes", "model": {"provider": "scripted", "script": script}},
        task_queue=worker,
    )
    assert result.status == "completed", result
    count, total = primes_below(1_000_000)
    assert f"{count} primes below 1000000, summing to {total}" in result.output
    # Only the sandbox has this uid and hostname: the figure was computed in the container.
    assert "computed as uid 10001 on host sandbox" in result.output
    assert result.steps == 4
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0


async def test_sandbox_exists_during_a_run_and_is_removed_when_it_completes(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("sleep", turn(shell="sleep 3"), turn("done")),
        task_queue=worker,
    )
    await wait_for(lambda: sandboxes_of(handle.id), what="the run's sandbox to exist")
    container = sandboxes_of(handle.id)[0]
    assert container.labels["tether.run_id"] == handle.result_run_id
    assert container.labels["tether.created_at"]
    result = await handle.result()
    assert result.status == "completed"
    assert sandboxes_of(handle.id) == []


async def test_sandbox_is_removed_when_a_run_fails(temporal_client: Client, worker: str):
    # One turn with a tool call and no turn after it: the scripted model fails step 2.
    handle = await tether.start_run(
        temporal_client, scripted_run("fail", turn(shell="echo hi")), task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "the script has 1 turn(s)" in str(failure.value.cause)
    assert sandboxes_of(handle.id) == []


@pytest.mark.parametrize("how", ["temporal_cancel", "cancel_update"])
async def test_sandbox_is_removed_when_a_run_is_cancelled(
    temporal_client: Client, worker: str, how: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("wait", turn(shell="sleep 60"), turn("done")),
        task_queue=worker)
    await wait_for(lambda: sandboxes_of(handle.id), what="the run's sandbox to exist")
    if how == "temporal_cancel":
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    else:
        await handle.execute_update(names.UPDATE_CANCEL, "enough")
        result = await handle.result()
        assert result.status == "cancelled"
        assert "enough" in result.stop_reason
    assert sandboxes_of(handle.id) == []


@pytest.mark.parametrize(
    ("bad_input", "named"),
    [
        ({"task": 5}, "task: Value error, task must be a string, got int"),
        ({"task": "x", "tools": [5]}, "tools.0"),  # an unknown name fails at start: test_function_tools.py
        ({"task": "x", "budget": {"max_steps": 0}}, "budget.max_steps"),
        ({"task": "x", "model": {"provider": "scripted"}}, "needs a script"),
        ({"task": "x", "sandbox": {"network": "host"}}, "sandbox.network"),
        ({"task": "x", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
async def test_malformed_input_fails_the_run_at_once_naming_the_field(
    temporal_client: Client, worker: str, bad_input: dict, named: str
):
    # Started as raw JSON, as the Temporal CLI would: no client-side validation helps here.
    handle = await temporal_client.start_workflow(
        names.AGENT_RUN, bad_input, id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    message = str(failure.value.cause)
    assert "invalid AgentRun input" in message
    assert named in message
    assert failure.value.cause.non_retryable
    # Failed on the first workflow task: nothing was retried.
    events = [e async for e in handle.fetch_history_events()]
    assert sum(1 for e in events if e.HasField("workflow_task_failed_event_attributes")) == 0


async def test_max_steps_ends_the_run_as_budget_exhausted(temporal_client: Client, worker: str):
    loop_turns = [turn(shell=f"echo {i}") for i in range(5)]
    result = await tether.run(
        temporal_client,
        scripted_run("loop", *loop_turns, turn("never reached"), budget={"max_steps": 2}),
        task_queue=worker,
    )
    assert result.status == "budget_exhausted"
    assert result.steps == 2
    assert "max_steps reached: 2 of 2" in result.stop_reason


async def test_the_readme_temporal_cli_recipe_runs_an_agent(temporal_address: str, worker: str):
    readme = (ROOT / "README.md").read_text()
    recipe = re.search(r"```sh\n(temporal workflow execute .*?)\n```", readme, re.S)
    assert recipe, "the README shows a `temporal workflow execute` recipe"
    command = recipe.group(1).replace("\\\n", " ")
    command = command.replace("--task-queue agents", f"--task-queue {worker}")
    command = command.replace("temporal workflow", f"{temporal_binary()} workflow", 1)
    code, stdout, stderr = await run_command(
        command + f" --address {temporal_address} -o json", shell=True)
    assert code == 0, stderr
    result = json.loads(stdout)["result"]
    assert result["status"] == "completed"
    assert result["output"] == "6 * 7 = 42"


async def test_the_cli_runs_a_scripted_agent_and_prints_json(
    temporal_address: str, worker: str
):
    code, stdout, stderr = await run_command(
        f"{sys.executable} -m tether.cli run demo --model scripted:examples/demo.json --wait --json",
        shell=True, env={**os.environ, "TETHER_TASK_QUEUE": worker,
                         "TEMPORAL_ADDRESS": temporal_address},
    )
    assert code == 0, stderr
    printed = json.loads(stdout)
    assert printed["status"] == "completed"
    assert "summing to" in printed["output"]
    assert printed["ui"].endswith(printed["workflow_id"])
