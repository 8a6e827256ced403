"""A model turn's charge to the run's budget account (`budget.account`): its largest cost
reserved before the call, what it used committed after, the reservation released when no
model answered. The account itself is the `BudgetAccount` workflow; activities carry each
update to it (a workflow cannot send one to another workflow). Local activities, on the
run's own worker: an update is one round trip to the server, and a remote activity's
dispatch would add about as much again to every turn (bench/bench_accounts.py).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout
from tether.contracts import Usage
from tether.contracts.accounts import (
    COMMIT_ACCOUNT,
    RELEASE_ACCOUNT,
    RESERVE_ACCOUNT,
    AccountCommitInput,
    AccountReleaseInput,
    AccountReserveInput,
    Reserved,
)
from tether.workflows.failures import root_message, stop_if_cancelled
from tether.workflows.options import ActivityOptions
from tether.workflows.state import RunState

ACCOUNT_PATCH = "budget-account"
"""Asked only by runs that name an account: every other run's history stays as it was."""
LAST_TOOLS_PATCH = "account-last-tools"


def reservation_id(state: RunState) -> str:
    """The run (its first execution's id too, should a later run reuse the workflow id) and
    the step: the same on every retry and replay of this turn, unique across runs."""
    info = workflow.info()
    return f"{info.workflow_id}/{info.first_execution_run_id}/{state.step}"


async def reserve(state: RunState, account: str, options: ActivityOptions) -> str:
    """Reserves the turn's largest cost; raises `BudgetExhausted`, naming the account, when
    the account refuses, and a non-retryable `InvalidInput` when there is no such account."""
    budget, rid = state.budget, reservation_id(state)
    previous = state.transcript[-1].usage if state.transcript else Usage()
    try:
        answer = await workflow.execute_local_activity(
            RESERVE_ACCOUNT,
            AccountReserveInput(
                account=account, reservation_id=rid, model=state.models[0], previous=previous,
                tokens_left=None if budget.max_tokens is None
                else budget.max_tokens - state.usage.total_tokens,
                cost_left_usd=None if budget.max_cost_usd is None
                else budget.max_cost_usd - state.usage.cost_usd),
            result_type=Reserved,
            start_to_close_timeout=options.account_timeout,
            schedule_to_close_timeout=options.account_wait,
            retry_policy=options.account_retry,
            summary=f"step {state.step} · reserve on account {account}",
        )
    except ActivityError as error:
        stop_if_cancelled(error)
        if isinstance(error.cause, ActivityTimeout):
            state.step -= 1
            raise exhausted(f"account {account} took no reservation within "
                            f"{options.account_wait}: {root_message(error)}") from None
        raise ApplicationError(root_message(error), type="InvalidInput", non_retryable=True) from None
    if not answer.granted:
        state.step -= 1  # the turn never reached a model: the run's steps are those that did
        raise exhausted(answer.refusal or f"account {account} is spent")
    return rid


def exhausted(message: str) -> Exception:
    """The `BudgetExhausted` the run catches. Imported here, when the workflow runs: the
    workflow sandbox gives AgentRun a copy of `budget` of its own (agent.py imports it as
    `from tether.workflows import budget`, which the sandbox reloads rather than passes
    through), and an import at module level would raise the host's class, which the run's
    `except` does not match."""
    from tether.workflows.budget import BudgetExhausted

    return BudgetExhausted("account", message)


async def commit(state: RunState, account: str, rid: str, used: Usage,
                 options: ActivityOptions) -> None:
    """Charges what the call used, and the sandbox seconds of the tool calls the model is
    answering (the previous step's)."""
    last = state.transcript[-1] if state.transcript else None
    seconds = (sum(r.duration_ms for r in last.tool_results) / 1000
               if last is not None and last.step == state.step - 1 else 0.0)
    await workflow.execute_local_activity(
        COMMIT_ACCOUNT,
        AccountCommitInput(account=account, reservation_id=rid, used=used, sandbox_seconds=seconds),
        start_to_close_timeout=options.account_timeout,
        schedule_to_close_timeout=options.account_wait,
        retry_policy=options.account_retry,
        summary=f"step {state.step} · commit to account {account}",
    )


async def charge_last_tools(state: RunState, options: ActivityOptions) -> None:
    """At the run's end: the sandbox seconds of its last tool calls, when no model call
    followed them to commit them (the run stopped after them: its steps, its time or a
    person). Best effort: a run that ends is not failed by its account."""
    account = state.budget.account
    if account is None or not workflow.patched(LAST_TOOLS_PATCH):
        return
    # A fork's inherited steps were paid for by the run they came from.
    ran = [record for record in state.transcript if record.tool_results and not record.inherited]
    if not ran:
        return
    last = ran[-1]
    if any(record.step == last.step + 1 and record.head is not None for record in state.transcript):
        return  # a model answered the next turn, and its commit charged them
    seconds = sum(result.duration_ms for result in last.tool_results) / 1000
    if seconds <= 0:
        return
    info = workflow.info()
    try:
        await workflow.execute_local_activity(
            COMMIT_ACCOUNT,
            AccountCommitInput(
                account=account, used=Usage(), sandbox_seconds=seconds, call=False,
                reservation_id=f"{info.workflow_id}/{info.first_execution_run_id}/{last.step}/tools"),
            start_to_close_timeout=options.account_timeout,
            schedule_to_close_timeout=options.account_wait,
            retry_policy=options.account_retry,
            summary=f"step {last.step} · its tools' sandbox seconds to account {account}",
        )
    except ActivityError as error:
        workflow.logger.warning("account %s was not charged the last tools' %.1f s: %s",
                                account, seconds, root_message(error))


async def release(state: RunState, account: str, rid: str, options: ActivityOptions) -> None:
    """Gives the reservation back; if that fails, it expires on its own (`contracts/accounts.py`)."""
    try:
        await workflow.execute_local_activity(
            RELEASE_ACCOUNT, AccountReleaseInput(account=account, reservation_id=rid),
            start_to_close_timeout=options.account_timeout,
            schedule_to_close_timeout=options.account_timeout * 4,
            retry_policy=options.account_retry,
            summary=f"step {state.step} · release on account {account}",
        )
    except ActivityError:
        pass  # the reservation's timeout drops it
