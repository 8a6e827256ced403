"""A sub-agent's budget, carved from its parent's. Pure functions, no Temporal.

A child gets, for each limit, at most what it asked for and at most its share of what the
parent has left once the budgets of its running siblings are set aside; when it ends, what
it used is charged to the parent and the rest returns. Each run stops at its first check
past a limit, so it overshoots by at most the one model call that crossed it; a child's
use (its descendants' included) is then at most its carve plus one call, and a parent that
delegates one child at a time never spends more than its budget plus one model call. Children
running at once may each cross their carve in the same moment: one call each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from tether.contracts import Budget, Usage
from tether.workflows.budget import MB, Spent

CARVED = ("max_steps", "max_tokens", "max_cost_usd", "max_seconds", "max_egress_mb")
SHARED = ("max_steps", "max_tokens", "max_cost_usd", "max_egress_mb")
"""What siblings split between them; seconds run on for all of them at once."""
WHAT = {"max_steps": "steps", "max_tokens": "tokens", "max_cost_usd": "dollars",
        "max_seconds": "seconds", "max_egress_mb": "egress MiB"}


class NothingToCarve(Exception):
    """The parent has none of a limit left to give: the `delegate` call is refused."""


@dataclass
class Reserved:
    """What the budgets of the run's running children hold back from it, by limit."""

    held: dict[str, float] = field(default_factory=dict)

    def hold(self, carved: Budget) -> None:
        for limit in SHARED:
            amount = getattr(carved, limit)
            if amount is not None:
                self.held[limit] = self.held.get(limit, 0) + amount

    def release(self, carved: Budget) -> None:
        for limit in SHARED:
            amount = getattr(carved, limit)
            if amount is not None:
                self.held[limit] = self.held.get(limit, 0) - amount


def left(budget: Budget, spent: Spent, reserved: Mapping[str, float]) -> dict[str, float | None]:
    """What the parent has left of each limit after what it spent and what its running
    children hold; None where it has no limit."""
    used: dict[str, float] = {
        "max_steps": spent.steps, "max_tokens": spent.usage.total_tokens,
        "max_cost_usd": spent.usage.cost_usd, "max_seconds": spent.seconds,
        "max_egress_mb": spent.egress_bytes / MB,
    }
    remaining: dict[str, float | None] = {}
    for limit in CARVED:
        cap = getattr(budget, limit)
        remaining[limit] = None if cap is None else max(0.0, cap - used[limit] - reserved.get(limit, 0))
    return remaining


def carve(asked: Budget, remaining: Mapping[str, float | None], *, sharing: int = 1) -> Budget:
    """The child's budget: each limit the least of what it asked and its share of what is
    left, `sharing` being the number of siblings still to be given theirs (itself included).
    Raises NothingToCarve, naming the limit, when its share is nothing."""
    changes: dict[str, float | int | None] = {}
    for limit in CARVED:
        have = remaining[limit]
        wanted = getattr(asked, limit)
        if have is None:
            changes[limit] = wanted
            continue
        share = have / max(1, sharing) if limit in SHARED else have
        if limit in ("max_steps", "max_tokens"):
            share = math.floor(share)
        if share <= 0 or (limit == "max_seconds" and share < 1):
            raise NothingToCarve(
                f"this run has no {WHAT[limit]} left to give a sub-agent "
                f"({limit}: {_shown(have)} left); answer with what you have")
        changes[limit] = share if wanted is None else min(wanted, share)
    return Budget.model_validate({**asked.model_dump(), **changes})


def charged(usage: Usage, steps: int, child_usage: Usage, child_steps: int) -> tuple[Usage, int]:
    """The parent's usage and delegated steps once a child's are charged to it."""
    return usage + child_usage, steps + child_steps


def _shown(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))
