"""A run's side of its budget account: reserve before a model call, commit or release after.

A workflow cannot send an update to another workflow, so these activities do, through the
worker's client. Each update carries an id made of the reservation's (the run, its first
execution and the step): Temporal answers a repeated update id with the first outcome, and
the account settles an id once, so a retried activity never charges twice.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from tether.contracts import ModelSpec, Usage
from tether.contracts.accounts import (
    ACCOUNT_BUSY,
    COMMIT_ACCOUNT,
    RELEASE_ACCOUNT,
    RESERVE_ACCOUNT,
    AccountCommitInput,
    AccountReleaseInput,
    AccountReserveInput,
    Amount,
    Commit,
    Reserve,
    Reserved,
    account_workflow_id,
)
from tether.contracts.names import UPDATE_COMMIT, UPDATE_RELEASE, UPDATE_RESERVE
from tether.llm.endpoints import EndpointRefused, ModelEndpoints
from tether.llm.pricing import cost_usd


def unknown_account(name: str) -> ApplicationError:
    return ApplicationError(
        f"budget account {name!r} does not exist: create it with "
        f"`tether account set {name} --max-tokens N --max-cost-usd D`",
        type="InvalidInput", non_retryable=True)


class AccountActivities:
    def __init__(self, *, endpoints: ModelEndpoints, max_output_tokens: int) -> None:
        self.endpoints = endpoints
        self.max_output_tokens = max_output_tokens
        """The most a call can answer with: what a reservation counts for its output."""

    def largest_call(self, input: AccountReserveInput) -> Amount:
        """What the next call can cost at most, as far as can be known before it: it reads
        at least the conversation the last call read and wrote, and answers with at most
        `max_output_tokens`; never more than the run itself has left."""
        read = input.previous.total_tokens
        tokens = read + self.max_output_tokens
        if input.tokens_left is not None:
            tokens = min(tokens, max(input.tokens_left, 0))
        cost = self._price(input.model, Usage(input_tokens=read, output_tokens=self.max_output_tokens))
        if input.cost_left_usd is not None:
            cost = min(cost, max(input.cost_left_usd, 0.0))
        return Amount(tokens=tokens, cost_usd=cost)

    def _price(self, spec: ModelSpec, usage: Usage) -> float:
        """The price of `usage`, 0.0 when unknown: a dollar limit can't hold back a call nobody
        can price, and its commit charges what its answer says it cost."""
        try:
            base_url = None if spec.provider == "scripted" else self.endpoints.route(spec).base_url
        except EndpointRefused:
            return 0.0
        return cost_usd(spec, usage, base_url=base_url) or 0.0

    @activity.defn(name=RESERVE_ACCOUNT)
    async def reserve(self, input: AccountReserveInput) -> Reserved:
        request = Reserve(id=input.reservation_id, amount=self.largest_call(input))
        try:
            answer: Reserved = await activity.client().get_workflow_handle(
                account_workflow_id(input.account)).execute_update(
                UPDATE_RESERVE, request, id=f"reserve/{input.reservation_id}", result_type=Reserved)
        except WorkflowUpdateFailedError as failed:
            cause = failed.cause
            if isinstance(cause, ApplicationError) and cause.type == ACCOUNT_BUSY:
                raise ApplicationError(cause.message, type=ACCOUNT_BUSY) from None
            raise
        except RPCError as error:
            raise _missing(error, input.account) from None
        if not answer.granted:
            activity.metric_meter().create_counter(
                "tether_account_refusals", "Model calls a budget account refused, by account").add(
                1, {"account": input.account})
        return answer

    @activity.defn(name=COMMIT_ACCOUNT)
    async def commit(self, input: AccountCommitInput) -> None:
        used = Amount(tokens=input.used.total_tokens, cost_usd=input.used.cost_usd)
        try:
            charged: bool = await activity.client().get_workflow_handle(
                account_workflow_id(input.account)).execute_update(
                UPDATE_COMMIT, Commit(id=input.reservation_id, used=used,
                                      sandbox_seconds=input.sandbox_seconds, call=input.call),
                id=f"commit/{input.reservation_id}", result_type=bool)
        except RPCError as error:
            raise _missing(error, input.account) from None
        if charged and input.call:
            meter, labels = activity.metric_meter(), {"account": input.account}
            meter.create_counter(
                "tether_account_tokens", "Tokens charged to budget accounts, by account").add(
                used.tokens, labels)
            meter.create_histogram_float(
                "tether_account_cost_usd", "Dollars per call charged to budget accounts, by account",
                "USD").record(used.cost_usd, labels)

    @activity.defn(name=RELEASE_ACCOUNT)
    async def release(self, input: AccountReleaseInput) -> None:
        try:
            await activity.client().get_workflow_handle(account_workflow_id(input.account)).execute_update(
                UPDATE_RELEASE, input.reservation_id, id=f"release/{input.reservation_id}")
        except RPCError as error:
            raise _missing(error, input.account) from None


def _missing(error: RPCError, account: str) -> Exception:
    """A missing or closed account workflow is a run's input naming no account; anything
    else (the server away) is retried."""
    if error.status == RPCStatusCode.NOT_FOUND:
        return unknown_account(account)
    return error
