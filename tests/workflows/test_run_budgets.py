"""Each budget ends a run where it should, enforced by the runtime, and `extend_budget`
moves the limit. Real dev server, real sandboxes, the scripted model."""

from __future__ import annotations

import asyncio
import os
import re

import docker.errors
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from tether import client as tether
from tether.contracts import names
from tether.workflows.agent import FINAL_ANSWER_PROMPT

from tests.helpers import sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, conversation, summaries, tool_calls


def priced(step: dict, *, tokens: tuple[int, int] = (100, 50), cost_usd: float = 0.0) -> dict:
    """A scripted turn that reports its own usage, as a provider would."""
    return {**step, "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1],
                              "cost_usd": cost_usd}}


def appending_turns(count: int, **usage) -> list[dict]:
    return [priced(turn(shell=f"echo {n} >> steps.log"), **usage) for n in range(1, count + 1)]


async def running_tools_at(client: Client, workflow_id: str, step: int) -> bool:
    status = await tether.get_status(client, workflow_id)
    return status.state == "running_tools" and status.step == step


async def test_max_steps_stops_before_the_step_that_would_be_one_too_many(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("loop", *appending_turns(5), turn("never"), budget={"max_steps": 3}),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "budget_exhausted"
    assert result.stop_reason == "max_steps reached: 3 of 3 steps used"
    assert result.steps == 3 and result.output is None
    runs = await activities(temporal_client, handle)
    assert [s for s in summaries(runs) if s.startswith("step")] == [
        "step 1 · scripted", "step 1 · shell", "step 2 · scripted", "step 2 · shell",
        "step 3 · scripted", "step 3 · shell"]
    assert sandboxes_of(handle.id) == []


@pytest.mark.parametrize(
    ("max_tokens", "steps", "tools_run"),
    [
        # 150 tokens a step. At 450 of 400 the third call went over: its tools don't run.
        (400, 3, 2),
        # At 300 of 300 the second call used the budget without breaking it: its tools run,
        # and the next step does not start.
        (300, 2, 2),
    ],
)
async def test_max_tokens_ends_the_run_after_the_model_call_that_goes_over_it(
    temporal_client: Client, worker: str, max_tokens: int, steps: int, tools_run: int
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("tokens", *appending_turns(5), turn("never"),
                     budget={"max_tokens": max_tokens}),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "budget_exhausted"
    used = 150 * steps
    assert result.stop_reason == f"max_tokens reached: {used} of {max_tokens} tokens used"
    assert result.steps == steps
    assert (result.usage.input_tokens, result.usage.output_tokens) == (100 * steps, 50 * steps)
    runs = await activities(temporal_client, handle)
    assert len(tool_calls(runs)) == tools_run
    last = (await tether.get_transcript(temporal_client, handle.id))[-1]
    assert last.step == steps
    if tools_run < steps:
        assert last.tool_calls and not last.tool_results
        assert "its tool calls did not run" in last.note


async def test_max_cost_usd_counts_the_cost_each_model_call_reports(
    temporal_client: Client, worker: str
):
    result = await tether.run(
        temporal_client,
        scripted_run("cost", *appending_turns(5, cost_usd=0.02), turn("never"),
                     budget={"max_cost_usd": 0.05}),
        task_queue=worker)
    assert result.status == "budget_exhausted"
    assert result.stop_reason == "max_cost_usd reached: $0.0600 of $0.0500 spent"
    assert result.steps == 3
    assert result.usage.cost_usd == pytest.approx(0.06)


def sleeping_processes(marker: str) -> list[int]:
    """Host processes whose command line carries `marker`: with the engine on this machine,
    a sandbox's processes are this kernel's, so a tool call's process shows here while it
    lives."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


async def test_max_seconds_cuts_a_tool_call_that_sleeps_far_longer(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        # 15 s leaves room to start the sandbox on a loaded machine before the deadline.
        scripted_run("sleep", turn(shell="sleep 987.5"), turn("never"),
                     budget={"max_seconds": 15}, sandbox={"tool_timeout_seconds": 900}),
        task_queue=worker)

    def sleeping_in_sandbox() -> bool:
        containers = sandboxes_of(handle.id)
        try:
            return bool(containers) and any(
                "sleep 987.5" in " ".join(row) for row in containers[0].top()["Processes"])
        except docker.errors.APIError:  # made but not started yet (409): asked again
            return False

    await wait_for(sleeping_in_sandbox, timeout=60, what="the tool call's process to start")
    assert sleeping_processes("sleep 987.5")
    result = await asyncio.wait_for(handle.result(), timeout=120)

    assert result.status == "budget_exhausted"
    assert re.fullmatch(r"max_seconds reached: \d+\.\d s of 15 s elapsed", result.stop_reason)
    # Ended at the deadline, not when the call would have: generous for a loaded machine.
    assert 15 <= result.seconds < 75
    runs = await activities(temporal_client, handle)
    call = next(r for r in runs if r.summary == "step 1 · shell")
    # The call acknowledged its cancellation (which kills its process group in the sandbox)
    # before the run released the sandbox.
    assert call.outcome == "canceled"
    assert summaries(runs)[-1] == "release sandbox"
    assert sleeping_processes("sleep 987.5") == []
    assert sandboxes_of(handle.id) == []
    last = (await tether.get_transcript(temporal_client, handle.id))[-1]
    assert last.step == 1 and "interrupted while its tool calls ran" in last.note


async def test_on_exhausted_final_answer_gives_the_model_one_turn_without_tools(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run(
            "answer at the end",
            turn(shell="echo 41"), turn(shell="echo 42"),
            # Served as the final turn: its tool call is dropped, its text is the answer.
            turn("the answer is {{last_output}}", shell="echo never"),
            budget={"max_steps": 2, "on_exhausted": "final_answer"}),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "budget_exhausted"
    assert result.stop_reason == "max_steps reached: 2 of 2 steps used"
    assert result.output == "the answer is 42"
    assert result.steps == 3
    runs = await activities(temporal_client, handle)
    assert "step 3 · shell" not in summaries(runs)
    final = (await tether.get_transcript(temporal_client, handle.id))[-1]
    assert (final.step, final.tool_calls, final.note) == (3, [], "final answer")
    # The model was told why, after the last tool result.
    messages = conversation(runs)
    assert [m.role for m in messages[-3:]] == ["tool", "user", "assistant"]
    assert messages[-2].content == FINAL_ANSWER_PROMPT


async def test_on_exhausted_final_answer_gets_no_turn_when_tokens_are_spent(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("no room", *appending_turns(3), turn("never"),
                     budget={"max_tokens": 300, "on_exhausted": "final_answer"}),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "budget_exhausted"
    assert result.stop_reason.startswith("max_tokens reached")
    assert result.output is None and result.steps == 2
    runs = await activities(temporal_client, handle)
    assert sum(1 for r in runs if r.type == "model_call") == 2


async def test_extend_budget_lets_a_run_about_to_run_out_of_steps_go_on(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("extend", turn(shell="sleep 5"), turn(shell="echo 2"), turn(shell="echo 3"),
                     turn("done after {{last_output}}"), budget={"max_steps": 2}),
        task_queue=worker)
    await wait_for(lambda: running_tools_at(temporal_client, handle.id, 1), what="step 1's tools")
    changed = await handle.execute_update(names.UPDATE_EXTEND_BUDGET, {"max_steps": 2})
    assert changed == {"max_steps": 4}
    assert (await tether.get_status(temporal_client, handle.id)).budget.max_steps == 4
    result = await handle.result()
    assert (result.status, result.steps, result.output) == ("completed", 4, "done after 3")


async def test_extend_budget_moves_the_deadline_of_the_step_in_flight(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("late", turn(shell="sleep 18"), turn("made it"), budget={"max_seconds": 15}),
        task_queue=worker)
    await wait_for(lambda: running_tools_at(temporal_client, handle.id, 1), what="step 1's tools")
    extended = await handle.execute_update(names.UPDATE_EXTEND_BUDGET, {"max_seconds": 120})
    assert extended == {"max_seconds": 135}
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "made it")
    assert result.seconds >= 18


async def test_extend_budget_rejects_bad_fields_and_amounts_as_update_failures(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("bad", turn(shell="sleep 5"), turn("done")),
        task_queue=worker)
    for more, message in [
        ({"max_stepz": 1}, "'max_stepz' is not a limit"),
        ({"max_steps": -1}, "max_steps must be raised by a positive number, got -1"),
        ({"max_cost_usd": "lots"}, "max_cost_usd must be raised by a positive number, got 'lots'"),
        ({"max_tokens": 1.5}, "max_tokens must be raised by a whole number, got 1.5"),
        ({}, "name at least one limit"),
    ]:
        with pytest.raises(WorkflowUpdateFailedError) as failure:
            await handle.execute_update(names.UPDATE_EXTEND_BUDGET, more)
        assert message in str(failure.value.cause)
    result = await handle.result()
    assert result.status == "completed"  # rejected updates leave the run alone
    events = [e async for e in handle.fetch_history_events()]
    assert not any(e.HasField("workflow_execution_update_accepted_event_attributes") for e in events)
