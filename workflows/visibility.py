"""What a run shows people: the `status` query, the Web UI's current details, and the
search attributes that let operators filter runs.

Pure functions of the run's state. Search attributes are upserted only when their value
changes: every upsert is an event in the run's history.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from tether.contracts import AgentRunInput, ModelSpec, PendingApproval, RunStatus
from tether.contracts.names import (
    SEARCH_COST_USD,
    SEARCH_FORK_OF,
    SEARCH_MODEL,
    SEARCH_STATUS,
    SEARCH_STEPS,
)
from tether.workflows.budget import Spent, view
from tether.workflows.state import RunState

STATUS = SearchAttributeKey.for_keyword(SEARCH_STATUS)
STEPS = SearchAttributeKey.for_int(SEARCH_STEPS)
COST = SearchAttributeKey.for_float(SEARCH_COST_USD)
MODEL = SearchAttributeKey.for_keyword(SEARCH_MODEL)
FORK_OF = SearchAttributeKey.for_keyword(SEARCH_FORK_OF)
"""Set when a fork starts (`tether.client.fork_run`), never by the run itself."""
SEARCH_ATTRIBUTES = (STATUS, STEPS, COST, MODEL, FORK_OF)
FINAL_PHASES = ("completed", "budget_exhausted", "cancelled", "failed")
SANDBOX_RELEASED = "released"
"""`RunStatus.sandbox` of a run whose idle sandbox was snapshot and removed."""


def model_label(spec: ModelSpec) -> str:
    return "scripted" if spec.provider == "scripted" else spec.label


def status_of(state: RunState, input: AgentRunInput, seconds: float) -> RunStatus:
    # A step whose calls wait for a person is still running tools; people need to know
    # it is waiting on them.
    # So is one whose sub-agent waits on a person.
    waiting = state.approvals or state.children_waiting
    phase = "awaiting_approval" if waiting and state.phase == "running_tools" else state.phase
    return RunStatus(
        state=phase,
        step=state.step,
        budget=view(state.budget, Spent(steps=state.step + state.delegated_steps, usage=state.usage,
                                        seconds=seconds)),
        usage=state.usage,
        pending_approvals=[wait.request for wait in state.approvals.values()],
        sandbox=(state.sandbox.container_id[:12] if state.sandbox
                 else SANDBOX_RELEASED if state.sandbox_released else None),
        last_error=state.last_error,
        model=state.last_model or model_label(input.model),
        children_waiting=[w for child in state.children_waiting.values() for w in child],
    )


def publish(status: RunStatus, started_at: datetime, *, search_attributes: bool = True) -> None:
    """Brings the Web UI's details, and unless told not to, the run's search attributes up to
    date. The details cost nothing in history; each attribute upsert is an event."""
    workflow.set_current_details(
        details_markdown(status, workflow.info().workflow_id, started_at, workflow.now()))
    if not search_attributes:
        return
    wanted = TypedSearchAttributes([
        SearchAttributePair(STATUS, status.state),
        SearchAttributePair(STEPS, status.step),
        SearchAttributePair(COST, round(status.usage.cost_usd, 4)),
        SearchAttributePair(MODEL, status.model),
    ])
    current = workflow.info().typed_search_attributes
    changes = [
        pair.key.value_set(pair.value) for pair in wanted
        if current.get(pair.key) != pair.value
    ]
    if changes:
        workflow.upsert_search_attributes(changes)


def publish_invalid(reason: str) -> None:
    """A run whose input is invalid never starts, yet is listed and filtered as failed."""
    workflow.upsert_search_attributes([STATUS.value_set("failed")])
    workflow.set_current_details(f"**failed** · the run's input is invalid\n\n{reason}")


def details_markdown(status: RunStatus, workflow_id: str, started_at: datetime, now: datetime) -> str:
    """The Web UI's current details. They are written at the run's last workflow task, so
    time is given as clock times (started, as of, deadline) that stay true while the run
    waits, rather than elapsed seconds that would go stale."""
    b = status.budget

    def of(value: float, limit: float | None, fmt: str = "{:g}") -> str:
        return fmt.format(value) + (f" of {fmt.format(limit)}" if limit is not None else " (no limit)")

    def clock(at: datetime) -> str:
        return at.strftime("%Y-%m-%d %H:%M:%S UTC")

    deadline = (f"deadline {clock(started_at + timedelta(seconds=b.max_seconds))}"
                if b.max_seconds is not None else "no deadline")
    lines = [
        f"**{status.state}** · step {status.step} · model {status.model}",
        "",
        f"**Budget** as of {clock(now)}:",
        "",
        f"- steps: {of(b.steps, b.max_steps)}",
        f"- tokens: {of(b.tokens, b.max_tokens)}",
        f"- cost: {of(b.cost_usd, b.max_cost_usd, '${:.4f}')}",
        f"- seconds: {of(round(b.seconds), b.max_seconds)} (started {clock(started_at)}, {deadline})",
    ]
    if status.pending_approvals:
        lines += ["", "**Waiting for approval:**", ""]
        for p in status.pending_approvals:
            lines += approval_lines(p, workflow_id)
    if status.sandbox == SANDBOX_RELEASED:
        lines += ["", "**Sandbox:** released while idle; the next tool call restores its workspace"]
    if status.children_waiting:
        lines += ["", "**Sub-agents waiting for approval:**", ""]
        lines += [f"- `{w.workflow_id}` `{w.call_id}` **{w.tool}** · approve: `{w.approve_command}`"
                  for w in status.children_waiting]
    if status.last_error:
        lines += ["", f"**Last error:** {code(status.last_error)}"]
    return "\n".join(lines)


def approval_lines(p: PendingApproval, workflow_id: str) -> list[str]:
    """A waiting call as the Web UI shows it: the model's reason, the arguments, and the digest
    of what would run. Arguments history holds cut are not offered for approval here: the
    command that prints them whole is, and it prints the one that approves exactly them."""
    lines = [f"- `{p.call_id}` **{p.tool}** {code(json.dumps(p.arguments))}"]
    if p.text:
        lines.append(f"  the model: {code(p.text)}")
    if p.arguments_digest:
        lines.append(f"  digest: `{p.arguments_digest}`")
    deny = f"`tether approve {workflow_id} {p.call_id} --deny --reason \"...\"`"
    if p.capped:
        return [*lines, f"  cut in the middle here: read it whole, and approve it, with "
                        f"`tether status {workflow_id}` · deny: {deny}"]
    pinned = f" --digest {p.arguments_digest}" if p.arguments_digest else ""
    return [*lines, f"  approve: `tether approve {workflow_id} {p.call_id}{pinned}` · deny: {deny}"]


def code(text: str) -> str:
    """`text` as one Markdown code span, which nothing inside can close early: what a model or
    a tool wrote is shown as written, never rendered as Markdown or links."""
    ticks, run = 1, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        ticks = max(ticks, run + 1)
    fence = "`" * ticks
    return f"{fence} {text.replace(chr(10), ' ')} {fence}"
