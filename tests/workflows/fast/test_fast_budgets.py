"""Budgets end a run: steps (with and without a final answer), tokens, dollars, and the
wall-clock deadline interrupting a tool call in flight. Stand-in activities, no Docker."""

from __future__ import annotations

from temporalio.client import Client
from tether.contracts import Message, NewMessage
from tether.workflows.agent import FINAL_ANSWER_PROMPT

from tests.workflows.fast.standins import StandIns, serving, start, status, transcript, turn


async def test_a_run_out_of_steps_stops_without_another_model_turn(fast_client: Client):
    fakes = StandIns(turn("still working", shell="make"))  # never gives an answer
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, budget={"max_steps": 2})
        result = await handle.result()
        final = await status(handle)

    assert (result.status, result.steps, result.output) == ("budget_exhausted", 2, None)
    assert result.stop_reason == "max_steps reached: 2 of 2 steps used"
    assert [call.step for call in fakes.model_calls] == [1, 2]
    assert fakes.keys == [f"{handle.id}/1/0", f"{handle.id}/2/0"]
    assert [len(fakes.acquired), fakes.released] == [1, ["box-1"]]
    assert (final.state, final.step, final.budget.steps, final.budget.max_steps) == (
        "budget_exhausted", 2, 2, 2)
    assert final.sandbox is None


async def test_a_run_out_of_steps_with_final_answer_gets_one_more_turn_without_tools(fast_client: Client):
    fakes = StandIns(turn(shell="make"), turn(shell="make test"), turn("the build is fixed"))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes,
                             budget={"max_steps": 2, "on_exhausted": "final_answer"})
        result = await handle.result()
        steps = await transcript(handle)

    assert (result.status, result.steps, result.output) == ("budget_exhausted", 3, "the build is fixed")
    assert result.stop_reason == "max_steps reached: 2 of 2 steps used"
    first, _, last = fakes.model_calls
    assert first.tools == ["python", "shell", "read_file", "write_file"]
    assert last.tools == []
    assert last.append == [
        NewMessage(ref=f"result:{handle.id}/2/0"),
        NewMessage(message=Message(role="user", content=FINAL_ANSWER_PROMPT)),
    ]
    assert fakes.keys == [f"{handle.id}/1/0", f"{handle.id}/2/0"]
    assert (steps[-1].step, steps[-1].text, steps[-1].note) == (3, "the build is fixed", "final answer")


async def test_a_run_over_its_token_budget_stops_and_the_turns_tool_calls_do_not_run(fast_client: Client):
    fakes = StandIns(turn("working", shell="make", tokens=100))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, budget={"max_tokens": 150})
        result = await handle.result()
        steps = await transcript(handle)
        final = await status(handle)

    assert (result.status, result.steps, result.usage.total_tokens) == ("budget_exhausted", 2, 200)
    assert result.stop_reason == "max_tokens reached: 200 of 150 tokens used"
    assert fakes.keys == [f"{handle.id}/1/0"]  # step 2 asked for a call; it never ran
    assert steps[1].note == "its tool calls did not run: the budget is spent"
    assert (final.budget.tokens, final.budget.max_tokens) == (200, 150)
    assert fakes.released == ["box-1"]


async def test_a_run_over_its_dollar_budget_stops_after_the_model_call_that_crossed_it(fast_client: Client):
    fakes = StandIns(turn("working", shell="make", cost_usd=0.006))
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, budget={"max_cost_usd": 0.01})
        result = await handle.result()
        final = await status(handle)

    assert fakes.started[0].max_cost_usd == 0.01  # start_conversation is told, to refuse unpriced models
    assert (result.status, result.steps, result.cost_known) == ("budget_exhausted", 2, True)
    assert result.usage.cost_usd == 0.012
    assert result.stop_reason == "max_cost_usd reached: $0.0120 of $0.0100 spent"
    assert fakes.keys == [f"{handle.id}/1/0"]
    assert (final.state, final.budget.cost_usd, final.budget.max_cost_usd) == (
        "budget_exhausted", 0.012, 0.01)


async def test_the_deadline_interrupts_a_slow_tool_call_and_releases_the_sandbox(fast_client: Client):
    fakes = StandIns(turn(shell="sleep 600"), turn("never reached"), hold_tools=True)
    async with serving(fast_client, fakes):
        handle = await start(fast_client, fakes, budget={"max_seconds": 2})
        result = await handle.result()
        steps = await transcript(handle)

    assert (result.status, result.steps, result.output) == ("budget_exhausted", 1, None)
    assert result.stop_reason.startswith("max_seconds reached: ")
    assert result.stop_reason.endswith(" of 2 s elapsed")
    assert 2 <= result.seconds < 10
    assert fakes.cancelled_tools == [f"{handle.id}/1/0"]  # the call was cancelled, not left running
    assert len(fakes.model_calls) == 1
    assert fakes.released == ["box-1"]
    assert "interrupted while its tool calls ran" in (steps[0].note or "")
