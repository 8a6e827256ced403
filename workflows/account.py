"""The BudgetAccount workflow: one per account (`tether-account-NAME`), living as long as the
account, so its usage is Temporal state that outlives any worker or server restart.

Runs talk to it through updates, each one recorded once: `reserve` before a model call,
`commit` or `release` after it; `set_limits` from `tether account set`; the `show` query
for `tether account show`. Periods end and reservations expire when the next update or
query looks (the workflow's clock, so a replay decides the same): no timer is needed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tether.contracts.accounts import (
        ACCOUNT_BUSY,
        AccountLimits,
        AccountState,
        AccountView,
        Commit,
        Reserve,
        Reserved,
    )
    from tether.contracts.names import (
        BUDGET_ACCOUNT,
        QUERY_SHOW_ACCOUNT,
        UPDATE_COMMIT,
        UPDATE_RELEASE,
        UPDATE_RESERVE,
        UPDATE_SET_LIMITS,
    )
    from tether.workflows import account_ledger as ledger

@workflow.defn(name=BUDGET_ACCOUNT)
class BudgetAccount:
    @workflow.init
    def __init__(self, state: AccountState) -> None:
        # Built here: the update that starts the account (update-with-start) is handled
        # before `run` begins.
        self.state = state
        if state.period_end is None:
            state.period_end = ledger.period_end(state.limits, workflow.now())
        self.handled = 0

    @workflow.run
    async def run(self, state: AccountState) -> None:
        info = workflow.info()
        await workflow.wait_condition(
            lambda: self.handled >= self.state.updates_before_continuing
            or info.is_continue_as_new_suggested()
            or info.is_target_worker_deployment_version_changed())
        await workflow.wait_condition(workflow.all_handlers_finished)
        # With Worker Versioning, the account starts pinned to its worker's version, like a
        # run; unlike a run it never ends, so it moves to the current version as it
        # continues (which a new version's rollout prompts), before the old one's workers go.
        versioned = info.get_current_deployment_version() is not None
        workflow.continue_as_new(self.state, initial_versioning_behavior=(
            workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE if versioned else None))

    def _now(self) -> datetime:
        now = workflow.now()
        ledger.roll(self.state, now)
        ledger.expire(self.state, now)
        self.handled += 1
        return now

    @workflow.update(name=UPDATE_RESERVE)
    def reserve(self, request: Reserve) -> Reserved:
        return ledger.reserve(self.state, request, self._now())

    @reserve.validator
    def _validate_reserve(self, request: Reserve) -> None:
        # Refused in the validator, a busy answer leaves no trace in history: the caller
        # asks again until calls in flight settle.
        shown = self.state.model_copy(deep=True)
        now = workflow.now()
        ledger.roll(shown, now)
        ledger.expire(shown, now)
        try:
            ledger.reserve(shown, request, now)
        except ledger.Busy as busy:
            raise ApplicationError(str(busy), type=ACCOUNT_BUSY) from None

    @workflow.update(name=UPDATE_COMMIT)
    def commit(self, request: Commit) -> bool:
        self._now()
        return ledger.commit(self.state, request)

    @workflow.update(name=UPDATE_RELEASE)
    def release(self, reservation_id: str) -> None:
        self._now()
        ledger.release(self.state, reservation_id)

    @workflow.update(name=UPDATE_SET_LIMITS)
    def set_limits(self, limits: AccountLimits) -> AccountView:
        now = self._now()
        ledger.set_limits(self.state, limits, now)
        return ledger.view(self.state, now)

    @set_limits.validator
    def _validate_set_limits(self, limits: AccountLimits) -> None:
        if limits.name != self.state.limits.name:
            raise ValueError(f"this is account {self.state.limits.name}, not {limits.name}")

    @workflow.query(name=QUERY_SHOW_ACCOUNT)
    def show(self) -> AccountView:
        # A query records nothing, so reading the real clock cannot break replay: a period
        # that ended while no update came shows as ended.
        with workflow.unsafe.sandbox_unrestricted():
            now = datetime.now(UTC)
        return ledger.view(self.state, max(now, workflow.now()))
