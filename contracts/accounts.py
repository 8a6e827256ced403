"""Budget accounts: a ceiling on tokens and dollars shared by every run that names it.

An account is one long-lived `BudgetAccount` workflow (`account_workflow_id`). A run's model
call reserves its largest possible cost before it starts and commits what it used after;
these are the models that cross the data converter on the way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from tether.contracts.messages import Strict, Usage
from tether.contracts.run import ACCOUNT_NAME_PATTERN, ModelSpec

ACCOUNT_WORKFLOW_PREFIX = "tether-account-"
RESERVE_ACCOUNT = "account_reserve"
COMMIT_ACCOUNT = "account_commit"
RELEASE_ACCOUNT = "account_release"
ACCOUNT_BUSY = "AccountBusy"
"""The account's answer while calls in flight hold all that is left: the caller asks again."""
RESERVATION_TIMEOUT_SECONDS = 30 * 60
"""A reservation neither committed nor released in this time is dropped: its run crashed or
was terminated. Longer than a model turn's retries normally take; a call that does finish
later is still charged when it commits."""

Period = Literal["day"]


def account_workflow_id(name: str) -> str:
    return ACCOUNT_WORKFLOW_PREFIX + name


class AccountLimits(Strict):
    """What `tether account set` gives. Each `None` means unlimited."""

    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    period: Period | None = None
    """`day`: usage starts again from zero at each midnight UTC. None: it never does."""


class Amount(Strict):
    """Tokens and dollars: what a reservation holds, or what a call used."""

    tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)


class Reservation(Strict):
    id: str
    amount: Amount
    expires_at: datetime


class Reserve(Strict):
    """The `reserve` update's argument."""

    id: str
    """Made of the run and its step: a retried activity reserves once."""
    amount: Amount


class Reserved(Strict):
    """The `reserve` update's answer: a reservation, or why there is none."""

    granted: bool
    amount: Amount = Field(default_factory=Amount)
    refusal: str | None = None


class Commit(Strict):
    """The `commit` update's argument: what the reserved call used."""

    id: str
    used: Amount
    sandbox_seconds: float = Field(default=0.0, ge=0)
    call: bool = True
    """False for the sandbox seconds of a run's last tool calls, which no model call follows
    to carry them: a charge, not a call."""


class AccountView(Strict):
    """The `show` query's answer: limits, what the period has used and what calls hold."""

    name: str
    max_tokens: int | None
    max_cost_usd: float | None
    period: Period | None
    period_end: datetime | None
    used: Amount
    sandbox_seconds: float
    reserved: Amount
    reservations: int
    calls: int
    """Calls committed this period."""


class AccountState(Strict):
    """All an account holds, carried whole across continue-as-new."""

    limits: AccountLimits
    period_end: datetime | None = None
    used: Amount = Field(default_factory=Amount)
    sandbox_seconds: float = 0.0
    calls: int = 0
    reservations: dict[str, Reservation] = Field(default_factory=dict)
    settled: list[str] = Field(default_factory=list)
    """The latest committed or released reservation ids: a retried commit charges once."""
    updates_before_continuing: int = Field(default=1000, ge=1)
    """Updates per execution before it continues as new (also when Temporal suggests it)."""


class AccountReserveInput(Strict):
    """The reserve activity's input: the run's call, priced by the activity."""

    account: str
    reservation_id: str
    model: ModelSpec
    previous: Usage = Field(default_factory=Usage)
    """The run's last call: the next one reads at least that conversation again."""
    tokens_left: int | None = None
    """The run's own tokens left: a call can't use more before the run stops it."""
    cost_left_usd: float | None = None


class AccountCommitInput(Strict):
    account: str
    reservation_id: str
    used: Usage
    sandbox_seconds: float = 0.0
    call: bool = True


class AccountReleaseInput(Strict):
    account: str
    reservation_id: str
