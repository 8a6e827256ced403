"""Budgets: limits, usage and the checks between them. Pure functions, no Temporal.

The workflow calls `check` before every step and after every model call. The first limit
reached wins, and its `BudgetExhausted` names the limit and the value that broke it.

Before a step, reaching a limit is exhaustion: with 100 of 100 tokens used, another model
call could only go over. After a model call, only going over is: a call that lands exactly
on the limit has used the budget, not broken it, and its tool calls still run.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.contracts import Budget, BudgetView, Usage

LIMITS = ("max_steps", "max_tokens", "max_cost_usd", "max_seconds", "max_egress_mb")
MB = 1 << 20
WHOLE_LIMITS = ("max_steps", "max_tokens")


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
    egress_bytes: int = 0


def check(budget: Budget, spent: Spent, *, starting_step: bool) -> None:
    """Raises `BudgetExhausted` for the first limit `spent` has reached."""
    check_steps(budget, spent.steps, starting_step=starting_step)
    check_tokens(budget, spent.usage.total_tokens, starting_step=starting_step)
    check_cost(budget, spent.usage.cost_usd, starting_step=starting_step)
    check_seconds(budget, spent.seconds)
    check_egress(budget, spent.egress_bytes, starting_step=starting_step)


def check_egress(budget: Budget, egress_bytes: int, *, starting_step: bool) -> None:
    limit = budget.max_egress_mb
    if limit is not None and _broken(egress_bytes, limit * MB, starting_step):
        raise BudgetExhausted(
            "max_egress_mb",
            f"max_egress_mb reached: {egress_bytes / MB:.1f} of {limit:g} MiB through the egress proxy")


def check_steps(budget: Budget, steps: int, *, starting_step: bool) -> None:
    if _broken(steps, budget.max_steps, starting_step):
        raise BudgetExhausted(
            "max_steps", f"max_steps reached: {steps} of {budget.max_steps} steps used")


def check_tokens(budget: Budget, tokens: int, *, starting_step: bool) -> None:
    if _broken(tokens, budget.max_tokens, starting_step):
        raise BudgetExhausted(
            "max_tokens", f"max_tokens reached: {tokens} of {budget.max_tokens} tokens used")


def check_cost(budget: Budget, cost_usd: float, *, starting_step: bool) -> None:
    if _broken(cost_usd, budget.max_cost_usd, starting_step):
        raise BudgetExhausted(
            "max_cost_usd",
            f"max_cost_usd reached: ${cost_usd:.4f} of ${budget.max_cost_usd:.4f} spent",
        )


def check_seconds(budget: Budget, seconds: float) -> None:
    # Time only moves on: being at the deadline is past it, before a step or after.
    if budget.max_seconds is not None and seconds >= budget.max_seconds:
        raise out_of_time(budget, seconds)


def out_of_time(budget: Budget, seconds: float) -> BudgetExhausted:
    """The error for a run whose deadline timer fired.

    Built directly rather than through `check_seconds`: the workflow's clock at the timer's
    firing may read a hair under the limit, and the deadline has passed all the same.
    """
    return BudgetExhausted(
        "max_seconds", f"max_seconds reached: {seconds:.1f} s of {budget.max_seconds:g} s elapsed")


def _broken(used: float, limit: float | None, starting_step: bool) -> bool:
    if limit is None:
        return False
    return used >= limit if starting_step else used > limit


def seconds_left(budget: Budget, elapsed: float) -> float | None:
    """Time until the run's deadline, or None without one."""
    if budget.max_seconds is None:
        return None
    return max(0.0, budget.max_seconds - elapsed)


def allows_final_answer(budget: Budget, spent: Spent) -> bool:
    """Whether a run out of steps has tokens, dollars and time left for one more turn.

    The step limit is the only one a final answer may go past: it is what `on_exhausted:
    final_answer` asks for. A run out of tokens, dollars or time gets no extra turn.
    """
    try:
        check(budget.model_copy(update={"max_steps": None}), spent, starting_step=True)
    except BudgetExhausted:
        return False
    return True


def extend(budget: Budget, more: dict[str, object]) -> Budget:
    """A budget with each named limit raised by its amount; unlimited stays unlimited.

    Raises ValueError, naming the field, for an unknown limit, an amount that is not a
    positive number, or a fraction of a step or token.
    """
    if not more:
        raise ValueError(f"name at least one limit to raise: {', '.join(LIMITS)}")
    changes: dict[str, float | int] = {}
    for field, amount in more.items():
        if field not in LIMITS:
            raise ValueError(f"{field!r} is not a limit; the limits are {', '.join(LIMITS)}")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
            raise ValueError(f"{field} must be raised by a positive number, got {amount!r}")
        if field in WHOLE_LIMITS and amount != int(amount):
            raise ValueError(f"{field} must be raised by a whole number, got {amount!r}")
        current = getattr(budget, field)
        if current is not None:
            changes[field] = current + (int(amount) if field in WHOLE_LIMITS else amount)
    return Budget.model_validate({**budget.model_dump(), **changes})


def view(budget: Budget, spent: Spent) -> BudgetView:
    return BudgetView(
        steps=spent.steps, max_steps=budget.max_steps,
        tokens=spent.usage.total_tokens, max_tokens=budget.max_tokens,
        cost_usd=round(spent.usage.cost_usd, 6), max_cost_usd=budget.max_cost_usd,
        seconds=round(spent.seconds, 3), max_seconds=budget.max_seconds,
    )
