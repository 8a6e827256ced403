"""A sub-agent's budget carved from its parent's (workflows/carving.py): at most what it asks,
at most what the parent has left, and a tree of runs that never spends more than the root's
budget plus one model call."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tether.contracts import Budget, Usage
from tether.workflows.budget import BudgetExhausted, Spent, check
from tether.workflows.carving import SHARED, NothingToCarve, Reserved, carve, charged, left

ONE_CALL = 500
"""The most tokens one model call of the simulated runs takes."""

limits = st.one_of(st.none(), st.integers(min_value=1, max_value=5_000))


def spent(steps: int = 0, tokens: int = 0, cost: float = 0.0, seconds: float = 0.0) -> Spent:
    return Spent(steps=steps, usage=Usage(input_tokens=tokens, cost_usd=cost), seconds=seconds)


def test_a_child_gets_what_it_asks_when_the_parent_has_more():
    parent = Budget(max_steps=20, max_tokens=1_000, max_cost_usd=1.0, max_seconds=600)
    child = carve(Budget(max_steps=3, max_tokens=100, max_cost_usd=0.1, max_seconds=60),
                  left(parent, spent(steps=2, tokens=200, cost=0.2, seconds=10), {}))
    assert (child.max_steps, child.max_tokens, child.max_cost_usd, child.max_seconds) == (3, 100, 0.1, 60)


def test_a_child_gets_at_most_what_the_parent_has_left():
    parent = Budget(max_steps=20, max_tokens=1_000, max_cost_usd=1.0, max_seconds=600)
    child = carve(Budget(max_steps=50, max_tokens=None, max_cost_usd=5.0, max_seconds=3600),
                  left(parent, spent(steps=15, tokens=900, cost=0.75, seconds=500), {}))
    assert (child.max_steps, child.max_tokens, child.max_cost_usd, child.max_seconds) == (5, 100, 0.25, 100)


def test_what_running_siblings_hold_is_not_left_to_give():
    parent = Budget(max_steps=None, max_tokens=1_000, max_seconds=None)
    reserved = Reserved()
    reserved.hold(Budget(max_steps=None, max_tokens=700, max_seconds=None))
    child = carve(Budget(max_steps=None, max_seconds=None), left(parent, spent(tokens=100), reserved.held))
    assert child.max_tokens == 200
    reserved.release(Budget(max_steps=None, max_tokens=700, max_seconds=None))
    assert carve(Budget(max_steps=None, max_seconds=None),
                 left(parent, spent(tokens=100), reserved.held)).max_tokens == 900


def test_siblings_of_one_step_share_what_is_left():
    parent = Budget(max_steps=None, max_tokens=900, max_seconds=None)
    child = carve(Budget(max_steps=None, max_seconds=None), left(parent, spent(), {}), sharing=3)
    assert child.max_tokens == 300


def test_a_parent_with_nothing_left_refuses_naming_the_limit():
    parent = Budget(max_steps=10, max_tokens=None)
    with pytest.raises(NothingToCarve, match=r"no steps left.*max_steps: 0 left"):
        carve(Budget(), left(parent, spent(steps=10), {}))


def test_what_the_child_used_is_added_to_the_parents_use():
    usage, steps = charged(Usage(input_tokens=10, cost_usd=0.5), 3,
                           Usage(output_tokens=5, cost_usd=0.25), 2)
    assert (usage.total_tokens, usage.cost_usd, steps) == (15, 0.75, 5)


@settings(max_examples=300, deadline=None)
@given(parent=st.builds(Budget, max_steps=limits, max_tokens=limits, max_seconds=st.none()),
       used=st.integers(min_value=0, max_value=6_000),
       asks=st.lists(st.builds(Budget, max_steps=limits, max_tokens=limits, max_seconds=st.none()),
                     min_size=1, max_size=6))
def test_siblings_carved_at_once_never_hold_more_than_the_parent_has_left(
    parent: Budget, used: int, asks: list[Budget]
):
    remaining = left(parent, spent(tokens=used), {})
    reserved = Reserved()
    for index, asked in enumerate(asks):
        try:
            child = carve(asked, left(parent, spent(tokens=used), reserved.held),
                          sharing=len(asks) - index)
        except NothingToCarve:
            continue
        for limit in ("max_steps", "max_tokens"):
            wanted, got = getattr(asked, limit), getattr(child, limit)
            assert wanted is None or got <= wanted
        reserved.hold(child)
    for limit in SHARED:
        have = remaining[limit]
        assert have is None or reserved.held.get(limit, 0) <= have


def run_tree(budget: Budget, depth: int, data: st.DataObject) -> tuple[int, int]:
    """A run as the workflow runs it: check, call the model, maybe delegate one child at a
    time (carved, run, charged), until a check stops it or it answers. Returns the tokens
    and steps it and its descendants used."""
    tokens, steps = 0, 0
    while True:
        try:
            check(budget, spent(steps=steps, tokens=tokens), starting_step=True)
        except BudgetExhausted:
            return tokens, steps
        tokens, steps = tokens + data.draw(st.integers(1, ONE_CALL)), steps + 1
        try:
            check(budget, spent(steps=steps, tokens=tokens), starting_step=False)
        except BudgetExhausted:
            return tokens, steps
        if depth < 3 and data.draw(st.booleans()):
            asked = Budget(max_steps=data.draw(limits), max_tokens=data.draw(limits), max_seconds=None)
            try:
                carved = carve(asked, left(budget, spent(steps=steps, tokens=tokens), {}))
            except NothingToCarve:
                continue
            child_tokens, child_steps = run_tree(carved, depth + 1, data)
            usage, steps = charged(Usage(input_tokens=tokens), steps,
                                   Usage(input_tokens=child_tokens), child_steps)
            tokens = usage.total_tokens
        elif data.draw(st.booleans()):
            return tokens, steps


@settings(max_examples=300, deadline=None)
@given(max_tokens=st.integers(1, 20_000), max_steps=st.integers(1, 40), data=st.data())
def test_a_parent_and_its_descendants_never_spend_more_than_its_budget_plus_one_model_call(
    max_tokens: int, max_steps: int, data: st.DataObject
):
    tokens, steps = run_tree(Budget(max_steps=max_steps, max_tokens=max_tokens, max_seconds=None),
                             0, data)
    assert tokens <= max_tokens + ONE_CALL
    assert steps <= max_steps
