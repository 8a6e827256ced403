"""workflows/budget.py: each limit, before and after a step, extension, and messages that
name the limit and the value that broke it. Pure functions, no Temporal."""

from __future__ import annotations

import pytest
from tether.contracts import Budget, Usage
from tether.workflows import budget as budgets
from tether.workflows.budget import BudgetExhausted, Spent

UNLIMITED = Budget(max_steps=None, max_seconds=None)


def spent(steps: int = 0, tokens: tuple[int, int] = (0, 0), cost: float = 0.0,
          seconds: float = 0.0) -> Spent:
    return Spent(steps=steps, usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1],
                                          cost_usd=cost), seconds=seconds)


def exhausted(budget: Budget, used: Spent, *, starting_step: bool) -> BudgetExhausted | None:
    try:
        budgets.check(budget, used, starting_step=starting_step)
    except BudgetExhausted as error:
        return error
    return None


def test_an_unlimited_budget_never_runs_out():
    assert exhausted(UNLIMITED, spent(10**6, (10**9, 10**9), 10**6, 10**9), starting_step=True) is None


@pytest.mark.parametrize(
    ("budget", "at_limit", "over_limit", "limit", "message"),
    [
        (Budget(max_steps=3), spent(steps=3), spent(steps=4), "max_steps",
         "max_steps reached: 3 of 3 steps used"),
        (Budget(max_tokens=100), spent(tokens=(60, 40)), spent(tokens=(60, 41)), "max_tokens",
         "max_tokens reached: 100 of 100 tokens used"),
        (Budget(max_cost_usd=0.5), spent(cost=0.5), spent(cost=0.51), "max_cost_usd",
         "max_cost_usd reached: $0.5000 of $0.5000 spent"),
    ],
)
def test_reaching_a_limit_stops_the_next_step_but_only_going_over_it_stops_a_turn_in_flight(
    budget: Budget, at_limit: Spent, over_limit: Spent, limit: str, message: str
):
    before = exhausted(budget, at_limit, starting_step=True)
    assert before is not None
    assert (before.limit, str(before)) == (limit, message)
    assert exhausted(budget, at_limit, starting_step=False) is None
    after = exhausted(budget, over_limit, starting_step=False)
    assert after is not None and after.limit == limit


def test_a_message_names_the_value_that_broke_the_limit():
    error = exhausted(Budget(max_tokens=400), spent(tokens=(300, 150)), starting_step=False)
    assert str(error) == "max_tokens reached: 450 of 400 tokens used"


def test_time_at_the_deadline_is_exhausted_before_and_after_a_step():
    budget = Budget(max_seconds=60)
    assert exhausted(budget, spent(seconds=59.9), starting_step=True) is None
    for starting_step in (True, False):
        error = exhausted(budget, spent(seconds=60), starting_step=starting_step)
        assert error is not None
        assert str(error) == "max_seconds reached: 60.0 s of 60 s elapsed"


def test_out_of_time_names_max_seconds_even_a_hair_before_the_limit():
    error = budgets.out_of_time(Budget(max_seconds=30), 29.9996)
    assert (error.limit, str(error)) == ("max_seconds", "max_seconds reached: 30.0 s of 30 s elapsed")


def test_the_first_limit_reached_wins_in_a_fixed_order():
    budget = Budget(max_steps=2, max_tokens=10, max_cost_usd=0.1, max_seconds=5)
    everything_spent = spent(steps=2, tokens=(10, 0), cost=0.1, seconds=5)
    assert exhausted(budget, everything_spent, starting_step=True).limit == "max_steps"
    assert exhausted(budget, spent(tokens=(10, 0), cost=0.1, seconds=5),
                     starting_step=True).limit == "max_tokens"


def test_seconds_left_counts_down_to_zero_and_is_none_without_a_deadline():
    assert budgets.seconds_left(Budget(max_seconds=10), 4) == 6
    assert budgets.seconds_left(Budget(max_seconds=10), 12) == 0
    assert budgets.seconds_left(UNLIMITED, 12) is None


def test_a_final_answer_may_pass_the_step_limit_but_no_other():
    budget = Budget(max_steps=2, max_tokens=100, max_cost_usd=1.0, max_seconds=60)
    assert budgets.allows_final_answer(budget, spent(steps=2, tokens=(50, 0), seconds=10))
    assert not budgets.allows_final_answer(budget, spent(steps=2, tokens=(100, 0)))
    assert not budgets.allows_final_answer(budget, spent(steps=2, cost=1.0))
    assert not budgets.allows_final_answer(budget, spent(steps=2, seconds=60))


def test_extend_raises_each_named_limit_and_leaves_the_rest():
    budget = Budget(max_steps=5, max_tokens=1000, max_cost_usd=1.0, max_seconds=60)
    extended = budgets.extend(budget, {"max_steps": 3, "max_cost_usd": 0.5})
    assert (extended.max_steps, extended.max_tokens, extended.max_cost_usd, extended.max_seconds) == (
        8, 1000, 1.5, 60)
    assert isinstance(budgets.extend(budget, {"max_tokens": 10.0}).max_tokens, int)


def test_extend_leaves_an_unlimited_limit_unlimited():
    assert budgets.extend(UNLIMITED, {"max_steps": 3}).max_steps is None


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({}, "name at least one limit to raise"),
        ({"on_exhausted": 1}, "'on_exhausted' is not a limit"),
        ({"max_steps": 0}, "max_steps must be raised by a positive number, got 0"),
        ({"max_seconds": -5}, "max_seconds must be raised by a positive number, got -5"),
        ({"max_steps": True}, "max_steps must be raised by a positive number, got True"),
        ({"max_cost_usd": None}, "max_cost_usd must be raised by a positive number, got None"),
        ({"max_steps": 2.5}, "max_steps must be raised by a whole number, got 2.5"),
    ],
)
def test_extend_rejects_what_is_not_a_positive_amount_of_a_limit(more: dict, message: str):
    with pytest.raises(ValueError, match="^" + message.replace("$", r"\$")):
        budgets.extend(Budget(), more)


def test_view_shows_usage_against_every_limit():
    budget = Budget(max_steps=5, max_tokens=1000, max_cost_usd=1.0, max_seconds=60)
    shown = budgets.view(budget, spent(steps=2, tokens=(100, 50), cost=0.1234567, seconds=3.14159))
    assert shown.model_dump() == {
        "steps": 2, "max_steps": 5, "tokens": 150, "max_tokens": 1000,
        "cost_usd": 0.123457, "max_cost_usd": 1.0, "seconds": 3.142, "max_seconds": 60,
    }
