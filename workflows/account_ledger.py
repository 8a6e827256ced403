"""A budget account's arithmetic: reservations, commits and periods. Pure functions, no
Temporal; the `BudgetAccount` workflow calls them with the workflow's time.

A reservation holds at most what is left (limit - used - held by other calls), so what is
held never passes the limit; a call that uses more than it held goes over by that much, and
each run has one call in flight: concurrent runs overspend by at most one call each.

Three answers to a reservation: granted (something is left); refused (the period's usage has
reached a limit: the run stops); busy (all that is left is held by calls in flight: the
caller waits and asks again, since what they don't use comes back).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tether.contracts.accounts import (
    RESERVATION_TIMEOUT_SECONDS,
    AccountLimits,
    AccountState,
    AccountView,
    Amount,
    Commit,
    Reservation,
    Reserve,
    Reserved,
)

SETTLED_KEPT = 1000
"""Settled reservation ids remembered: far more than the calls in flight at once."""


class Busy(Exception):
    """All that is left is held by calls in flight: ask again when one settles."""


def period_end(limits: AccountLimits, now: datetime) -> datetime | None:
    if limits.period != "day":
        return None
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=1)


def set_limits(state: AccountState, limits: AccountLimits, now: datetime) -> None:
    """New limits apply at once; a new period starts now only when the period changes."""
    if limits.period != state.limits.period or (limits.period and state.period_end is None):
        state.period_end = period_end(limits, now)
    state.limits = limits


def roll(state: AccountState, now: datetime) -> None:
    """Starts a new period once its end has passed: usage from zero. Calls in flight keep
    their reservations; what they commit counts in the new period."""
    if state.period_end is not None and now >= state.period_end:
        state.used, state.sandbox_seconds, state.calls = Amount(), 0.0, 0
        state.period_end = period_end(state.limits, now)


def expire(state: AccountState, now: datetime) -> list[str]:
    """Drops the reservations whose time is up (their runs crashed or were terminated)."""
    gone = [rid for rid, held in state.reservations.items() if held.expires_at <= now]
    for rid in gone:
        del state.reservations[rid]
    return gone


def held(state: AccountState) -> Amount:
    return Amount(tokens=sum(r.amount.tokens for r in state.reservations.values()),
                  cost_usd=sum(r.amount.cost_usd for r in state.reservations.values()))


def spent_reason(state: AccountState) -> str | None:
    """Why the account takes no more calls this period, or None while it does."""
    limits, used = state.limits, state.used
    when = "today (UTC)" if limits.period == "day" else "so far"
    if limits.max_tokens is not None and used.tokens >= limits.max_tokens:
        return (f"account {limits.name} is spent: {used.tokens} of {limits.max_tokens} tokens "
                f"used {when}")
    if limits.max_cost_usd is not None and used.cost_usd >= limits.max_cost_usd:
        return (f"account {limits.name} is spent: ${used.cost_usd:.4f} of "
                f"${limits.max_cost_usd:.4f} used {when}")
    return None


def reserve(state: AccountState, request: Reserve, now: datetime) -> Reserved:
    """Grants at most what is left, refuses a spent account, raises `Busy` when calls in
    flight hold all that is left. The same id asked again gets the same answer."""
    existing = state.reservations.get(request.id)
    if existing is not None:
        return Reserved(granted=True, amount=existing.amount)
    refusal = spent_reason(state)
    if refusal is not None:
        return Reserved(granted=False, refusal=refusal)
    limits, used, holding = state.limits, state.used, held(state)
    tokens, cost = request.amount.tokens, request.amount.cost_usd
    if limits.max_tokens is not None:
        left = limits.max_tokens - used.tokens - holding.tokens
        if left <= 0:
            raise _busy(state)
        tokens = min(tokens, left)
    if limits.max_cost_usd is not None:
        left_usd = limits.max_cost_usd - used.cost_usd - holding.cost_usd
        if left_usd <= 0:
            raise _busy(state)
        cost = min(cost, left_usd)
    amount = Amount(tokens=tokens, cost_usd=cost)
    state.reservations[request.id] = Reservation(
        id=request.id, amount=amount,
        expires_at=now + timedelta(seconds=RESERVATION_TIMEOUT_SECONDS))
    return Reserved(granted=True, amount=amount)


def _busy(state: AccountState) -> Busy:
    return Busy(f"account {state.limits.name}: calls in flight hold all that is left "
                f"({len(state.reservations)} reservation(s))")


def commit(state: AccountState, request: Commit) -> bool:
    """Charges what a call used, once per id (a retried commit is a no-op), also when its
    reservation has expired: the call did use it. Returns whether it charged."""
    if request.id in state.settled:
        return False
    state.reservations.pop(request.id, None)
    state.used = Amount(tokens=state.used.tokens + request.used.tokens,
                        cost_usd=round(state.used.cost_usd + request.used.cost_usd, 10))
    state.sandbox_seconds = round(state.sandbox_seconds + request.sandbox_seconds, 3)
    state.calls += 1 if request.call else 0
    _settle(state, request.id)
    return True


def release(state: AccountState, reservation_id: str) -> None:
    """Gives a reservation back whole: its call never answered."""
    state.reservations.pop(reservation_id, None)
    _settle(state, reservation_id)


def _settle(state: AccountState, reservation_id: str) -> None:
    state.settled.append(reservation_id)
    del state.settled[:-SETTLED_KEPT]


def view(state: AccountState, now: datetime) -> AccountView:
    """The account as of `now`: a period that has ended shows as the new one, and expired
    reservations are left out, as the next reservation would find them."""
    shown = state.model_copy(deep=True)
    roll(shown, now)
    expire(shown, now)
    limits = shown.limits
    return AccountView(
        name=limits.name, max_tokens=limits.max_tokens, max_cost_usd=limits.max_cost_usd,
        period=limits.period, period_end=shown.period_end, used=shown.used,
        sandbox_seconds=shown.sandbox_seconds, reserved=held(shown),
        reservations=len(shown.reservations), calls=shown.calls)
