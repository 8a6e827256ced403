"""A model turn: the primary model called, and on a permanent failure or spent retries, each
fallback in order. Only what a call carried leaves the state's queues. A run with a budget
account reserves the turn's largest cost on it first, and commits what it used after."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from tether.contracts import ModelCallInput, ModelCallOutput, StepRecord
from tether.contracts.activities import MODEL_CALL
from tether.workflows import account_charge, visibility
from tether.workflows.failures import root_message, stop_if_cancelled
from tether.workflows.options import ActivityOptions
from tether.workflows.state import RunState

Turn = tuple[ModelCallOutput, str, str | None, list[str]]


async def model_turn(
    state: RunState, *, tools: Sequence[str], options: ActivityOptions, model_label: str,
) -> Turn:
    """Returns the answer, the model that gave it, notes, and the people's messages it read.
    `model_label` names the model in flight until one answers. Raises `BudgetExhausted`
    when the run's account refuses the turn."""
    account = state.budget.account
    if account is None or not workflow.patched(account_charge.ACCOUNT_PATCH):
        return await _call_models(state, tools=tools, options=options, model_label=model_label)
    reservation = await account_charge.reserve(state, account, options)
    try:
        turn = await _call_models(state, tools=tools, options=options, model_label=model_label)
    except BaseException:  # failed, or interrupted: no model answered, nothing to charge
        await account_charge.release(state, account, reservation, options)
        raise
    await account_charge.commit(state, account, reservation, turn[0].usage, options)
    return turn


async def _call_models(
    state: RunState, *, tools: Sequence[str], options: ActivityOptions, model_label: str,
) -> Turn:
    state.phase = "thinking"
    notes: list[str] = []
    # Tool results first: providers need each right after the call it answers.
    sent_results, sent_inbox = len(state.tool_results), len(state.inbox)
    append = [*state.tool_results, *state.inbox]
    heard = list(state.from_people)
    state.in_flight = StepRecord(step=state.step, model=model_label, messages=heard)
    for index, spec in enumerate(state.models):
        label = visibility.model_label(spec)
        try:
            turn = await workflow.execute_activity(
                MODEL_CALL,
                ModelCallInput(workflow_id=workflow.info().workflow_id, step=state.step,
                               model=spec, head=state.head or "", append=append,
                               tools=list(tools), toolset=state.toolset),
                result_type=ModelCallOutput,
                start_to_close_timeout=options.model_timeout,
                heartbeat_timeout=options.model_heartbeat,
                retry_policy=options.model_retry,
                summary=f"step {state.step} · {label}",
            )
        except ActivityError as error:
            stop_if_cancelled(error)
            reason = f"{label} failed: {root_message(error)}"
            state.last_error = reason
            if index == len(state.models) - 1:
                raise ApplicationError(reason, type="ModelFailed", non_retryable=True) from None
            notes.append(f"{reason}; fell back to {visibility.model_label(state.models[index + 1])}")
            continue
        state.head = turn.head
        # Only what this call carried: a message sent during the call waits for the next.
        del state.tool_results[:sent_results]
        del state.inbox[:sent_inbox]
        del state.from_people[:len(heard)]
        state.last_model = label
        return turn, label, "; ".join(notes) or None, heard
    raise ApplicationError("no model to call", type="ModelFailed", non_retryable=True)
