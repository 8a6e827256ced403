"""Budgets: limits, usage and the checks between them. Pure functions, no Temporal.

The workflow calls `check` before every step and after every model call. The first limit
reached wins, and its `BudgetExhausted` names the limit and the value that broke it.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflows.types import Budget, BudgetView, Usage


class BudgetExhausted(Exception):
    """A limit was reached. A normal ending of a run, not a failure."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class Spent:
    """What a run has used so far."""

    steps: int
    usage: Usage
    seconds: float


def check(budget: Budget, spent: Spent, *, starting_step: bool) -> None:
    """Raises `BudgetExhausted` for the first limit `spent` has reached.

    Before a step (`starting_step`), reaching `max_steps` is exhaustion: that step would be
    one too many. After a model call, only going over a limit is.
    """
    if budget.max_steps is not None and (
        spent.steps >= budget.max_steps if starting_step else spent.steps > budget.max_steps
    ):
        raise BudgetExhausted(
            "max_steps", f"max_steps reached: {spent.steps} of {budget.max_steps} steps used"
        )
    tokens = spent.usage.total_tokens
    if budget.max_tokens is not None and (
        tokens >= budget.max_tokens if starting_step else tokens > budget.max_tokens
    ):
        raise BudgetExhausted(
            "max_tokens", f"max_tokens reached: {tokens} of {budget.max_tokens} tokens used"
        )
    cost = spent.usage.cost_usd
    if budget.max_cost_usd is not None and (
        cost >= budget.max_cost_usd if starting_step else cost > budget.max_cost_usd
    ):
        raise BudgetExhausted(
            "max_cost_usd",
            f"max_cost_usd reached: ${cost:.4f} of ${budget.max_cost_usd:.4f} spent",
        )
    if budget.max_seconds is not None and spent.seconds >= budget.max_seconds:
        raise BudgetExhausted(
            "max_seconds",
            f"max_seconds reached: {spent.seconds:.1f} s of {budget.max_seconds:g} s elapsed",
        )


def seconds_left(budget: Budget, elapsed: float) -> float | None:
    """Time until the run's deadline, or None without one."""
    if budget.max_seconds is None:
        return None
    return max(0.0, budget.max_seconds - elapsed)


def extend(budget: Budget, **more: float | int | None) -> Budget:
    """A budget with each given limit raised by the amount; unlimited stays unlimited."""
    changes: dict[str, float | int] = {}
    for field, amount in more.items():
        if amount is None:
            continue
        if amount <= 0:
            raise ValueError(f"{field} must be raised by a positive amount, got {amount}")
        current = getattr(budget, field)
        if current is not None:
            changes[field] = current + amount
    return budget.model_copy(update=changes)


def view(budget: Budget, spent: Spent) -> BudgetView:
    return BudgetView(
        steps=spent.steps, max_steps=budget.max_steps,
        tokens=spent.usage.total_tokens, max_tokens=budget.max_tokens,
        cost_usd=round(spent.usage.cost_usd, 6), max_cost_usd=budget.max_cost_usd,
        seconds=round(spent.seconds, 3), max_seconds=budget.max_seconds,
    )
