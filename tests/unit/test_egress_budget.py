"""`budget.max_egress_mb`: checked like every limit, raised like every limit."""

from __future__ import annotations

import pytest
from tether.contracts import Budget, Usage
from tether.workflows.budget import MB, BudgetExhausted, Spent, check, extend


def spent(egress_bytes: int) -> Spent:
    return Spent(steps=1, usage=Usage(), seconds=1.0, egress_bytes=egress_bytes)


def test_a_run_at_its_egress_limit_takes_no_further_step() -> None:
    budget = Budget(max_egress_mb=1)
    check(budget, spent(MB - 1), starting_step=True)
    with pytest.raises(BudgetExhausted, match=r"max_egress_mb reached: 1\.0 of 1 MiB") as caught:
        check(budget, spent(MB), starting_step=True)
    assert caught.value.limit == "max_egress_mb"


def test_an_egress_limit_is_raised_by_extend_and_none_stays_unlimited() -> None:
    assert extend(Budget(max_egress_mb=1), {"max_egress_mb": 2.5}).max_egress_mb == 3.5
    assert extend(Budget(), {"max_egress_mb": 2}).max_egress_mb is None
