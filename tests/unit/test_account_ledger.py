"""A budget account's arithmetic (workflows/account_ledger.py), with the clock given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tether.contracts.accounts import (
    RESERVATION_TIMEOUT_SECONDS,
    AccountLimits,
    AccountState,
    Amount,
    Commit,
    Reserve,
)
from tether.workflows import account_ledger as ledger

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def account(**limits: object) -> AccountState:
    state = AccountState(limits=AccountLimits.model_validate({"name": "team-a", **limits}))
    state.period_end = ledger.period_end(state.limits, NOON)
    return state


def ask(state: AccountState, rid: str, tokens: int, cost_usd: float = 0.0,
        now: datetime = NOON) -> ledger.Reserved:
    return ledger.reserve(state, Reserve(id=rid, amount=Amount(tokens=tokens, cost_usd=cost_usd)), now)


def test_a_reservation_holds_at_most_what_is_left():
    state = account(max_tokens=1000)
    assert ask(state, "a", 700).amount.tokens == 700
    assert ask(state, "b", 700).amount.tokens == 300


def test_a_reservation_asked_again_gets_the_same_answer_and_holds_once():
    state = account(max_tokens=1000)
    ask(state, "a", 400)
    assert ask(state, "a", 900).amount.tokens == 400
    assert ledger.held(state).tokens == 400


def test_an_account_whose_rest_is_held_by_calls_in_flight_is_busy_not_spent():
    state = account(max_tokens=1000)
    ask(state, "a", 1000)
    with pytest.raises(ledger.Busy, match="calls in flight hold all that is left"):
        ask(state, "b", 10)


def test_a_spent_account_refuses_naming_itself_and_the_limit():
    state = account(max_cost_usd=0.5)
    ask(state, "a", 100, 0.5)
    ledger.commit(state, Commit(id="a", used=Amount(tokens=100, cost_usd=0.6)))
    answer = ask(state, "b", 100, 0.1)
    assert not answer.granted
    assert answer.refusal == "account team-a is spent: $0.6000 of $0.5000 used so far"


def test_a_commit_charges_what_was_used_and_frees_the_reservation():
    state = account(max_tokens=1000)
    ask(state, "a", 800)
    assert ledger.commit(state, Commit(id="a", used=Amount(tokens=120), sandbox_seconds=1.5))
    assert (state.used.tokens, state.sandbox_seconds, state.reservations) == (120, 1.5, {})


def test_a_commit_retried_charges_once():
    state = account(max_tokens=1000)
    ask(state, "a", 100)
    ledger.commit(state, Commit(id="a", used=Amount(tokens=100)))
    assert not ledger.commit(state, Commit(id="a", used=Amount(tokens=100)))
    assert (state.used.tokens, state.calls) == (100, 1)


def test_a_released_reservation_charges_nothing_and_its_late_commit_is_ignored():
    state = account(max_tokens=1000)
    ask(state, "a", 100)
    ledger.release(state, "a")
    ledger.commit(state, Commit(id="a", used=Amount(tokens=100)))
    assert (state.used.tokens, ledger.held(state).tokens) == (0, 0)


def test_a_reservation_expires_after_its_timeout():
    state = account(max_tokens=1000)
    ask(state, "a", 1000)
    later = NOON + timedelta(seconds=RESERVATION_TIMEOUT_SECONDS)
    assert ledger.expire(state, later - timedelta(seconds=1)) == []
    assert ledger.expire(state, later) == ["a"]
    assert ask(state, "b", 10, now=later).granted


def test_a_call_whose_reservation_expired_is_still_charged_when_it_commits():
    state = account(max_tokens=1000)
    ask(state, "a", 100)
    ledger.expire(state, NOON + timedelta(days=1))
    assert ledger.commit(state, Commit(id="a", used=Amount(tokens=90)))
    assert state.used.tokens == 90


def test_a_daily_account_starts_from_zero_at_midnight_utc():
    state = account(max_tokens=100, period="day")
    ask(state, "a", 100)
    ledger.commit(state, Commit(id="a", used=Amount(tokens=100)))
    assert not ask(state, "b", 10).granted
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    assert state.period_end == midnight
    ledger.roll(state, midnight)
    assert (state.used.tokens, state.period_end) == (0, midnight + timedelta(days=1))
    assert ask(state, "b", 10, now=midnight).granted


def test_an_account_without_a_period_never_resets():
    state = account(max_tokens=100)
    ledger.commit(state, Commit(id="a", used=Amount(tokens=100)))
    ledger.roll(state, NOON + timedelta(days=400))
    assert state.used.tokens == 100


def test_the_view_shows_an_ended_period_as_the_new_one_without_changing_the_state():
    state = account(max_tokens=100, period="day")
    ledger.commit(state, Commit(id="a", used=Amount(tokens=60)))
    shown = ledger.view(state, NOON + timedelta(days=1))
    assert (shown.used.tokens, state.used.tokens) == (0, 60)


def test_new_limits_keep_what_the_period_has_used():
    state = account(max_tokens=100)
    ledger.commit(state, Commit(id="a", used=Amount(tokens=60)))
    ledger.set_limits(state, AccountLimits(name="team-a", max_tokens=500, period="day"), NOON)
    assert (state.used.tokens, state.period_end) == (60, datetime(2026, 3, 2, tzinfo=UTC))


def test_settled_ids_are_remembered_up_to_a_bound():
    state = account()
    for index in range(ledger.SETTLED_KEPT + 5):
        ledger.release(state, f"r{index}")
    assert len(state.settled) == ledger.SETTLED_KEPT
    assert state.settled[0] == "r5"


def test_a_call_nobody_can_price_is_granted_while_dollars_are_left():
    state = account(max_cost_usd=2.5)
    answer = ask(state, "a", 100, 0.0)
    assert (answer.granted, answer.amount) == (True, Amount(tokens=100, cost_usd=0.0))
