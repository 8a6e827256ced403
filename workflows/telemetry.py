"""A run's span and metrics, made in the workflow, replay-safe.

`RunTelemetry` is a worker interceptor (TetherPlugin installs it): around each `AgentRun`
execution it opens the run's `invoke_agent tether` span (GenAI conventions, with
`gen_ai.conversation.id` = the workflow id) and, as the run's activities complete, counts
steps and sandboxes; at the end it counts the run by final status and a budget stop by its
limit. An interceptor rather than lines in the loop: it sees every execution's start and end
in one place, and the loop stays about agents.

Replay-safe both ways: `workflow.metric_meter()` records nothing while a workflow replays
history, and the span is made only by a `ReplaySafeTracerProvider` (its ids come from the
workflow's seed and a replayed span is not ended twice), none being made otherwise.
Neither issues a command, so histories replay unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode
from temporalio import workflow
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from tether.contracts import AgentRunResult, ModelCallInput, ToolCall, ToolResult
from tether.contracts.activities import ACQUIRE_SANDBOX, MODEL_CALL
from tether.contracts.labels import model_label, tool_label
from tether.contracts.names import AGENT_RUN

AGENT_NAME = "tether"
TOOL_REFUSED_EXIT = 126
TOOL_FAILED_EXIT = 125


class RunTelemetry(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _RunInbound


# --- metrics ------------------------------------------------------------------------------
def count(name: str, description: str, labels: dict[str, str], value: int = 1) -> None:
    """Adds to a counter on the workflow's meter (which labels it with the namespace, queue
    and workflow type); nothing while replaying."""
    workflow.metric_meter().create_counter(name, description).add(value, labels)


def model_name(spec: Any) -> str:
    """A model's name for labels, bounded (`contracts/labels.py`); a script, stored by
    reference, is `scripted`."""
    if spec.provider == "scripted":
        return "scripted"
    return model_label(str(spec.provider), str(spec.name))


def tool_calls(calls: Sequence[ToolCall], results: Sequence[ToolResult], toolset: Collection[str]) -> None:
    """Counts a step's tool calls by tool (`unknown` for a name not in the run's `toolset`:
    the model chose it) and outcome: `ok`, `error` (a non-zero exit), `timed_out`, `refused`
    (not allowed, denied or never approved) or `failed` (it could not run: its sandbox,
    worker or server failed it)."""
    for call, result in zip(calls, results, strict=True):
        if result.timed_out:
            outcome = "timed_out"
        elif result.exit_code == 0:
            outcome = "ok"
        elif result.exit_code == TOOL_REFUSED_EXIT and not result.stdout:
            outcome = "refused"
        elif result.exit_code == TOOL_FAILED_EXIT and not result.stdout:
            outcome = "failed"
        else:
            outcome = "error"
        count("tether_tool_calls", "Tool calls by tool and outcome",
              {"tool": tool_label(call.name, toolset), "outcome": outcome})


def sandbox_lost() -> None:
    count("tether_sandboxes_lost", "Sandboxes runs lost (their worker or container gone)", {})


def _run_ended(status: str, result: AgentRunResult | None = None) -> None:
    count("tether_runs", "Runs by final status", {"status": status})
    if result is not None and status == "budget_exhausted":
        # Every stop reason starts with the limit's name: "max_tokens reached: ...", or
        # "account NAME ..." for a budget account's refusal.
        limit = result.stop_reason.split(" ", 1)[0]
        count("tether_budget_stops", "Runs stopped by a budget limit, by limit",
              {"limit": limit if limit.startswith("max_") or limit == "account" else "unknown"})


def _activity_done(input: StartActivityInput, handle: asyncio.Future[Any]) -> None:
    if handle.cancelled() or handle.exception() is not None:
        return
    if input.activity == MODEL_CALL and input.args and isinstance(input.args[0], ModelCallInput):
        count("tether_steps", "Model calls that answered, a step each, by model",
              {"model": model_name(input.args[0].model)})
    elif input.activity == ACQUIRE_SANDBOX:
        count("tether_sandboxes_created", "Sandboxes made for runs", {})


# --- the run's span ----------------------------------------------------------------------
@contextmanager
def _agent_span(raw: Any) -> Iterator[Span]:
    if not isinstance(trace.get_tracer_provider(), ReplaySafeTracerProvider):
        yield INVALID_SPAN  # a provider that would end spans again on replay: none at all
        return
    info = workflow.info()
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": AGENT_NAME,
        "gen_ai.conversation.id": info.workflow_id, "tether.run_id": info.run_id,
    }
    model = raw.get("model") if isinstance(raw, dict) else None
    if isinstance(model, str):
        provider, _, name = model.partition(":")
        model = {"provider": provider, "name": name}
    if isinstance(model, dict) and model.get("provider"):
        attributes["gen_ai.provider.name"] = (
            "tether.scripted" if model["provider"] == "scripted" else model["provider"])
        attributes["gen_ai.request.model"] = (
            "scripted" if model["provider"] == "scripted" else str(model.get("name", "")))
    budget = raw.get("budget") if isinstance(raw, dict) else None
    if isinstance(budget, dict) and isinstance(budget.get("account"), str):
        attributes["tether.budget.account"] = budget["account"]
    tracer = trace.get_tracer(AGENT_NAME)
    with tracer.start_as_current_span(
            f"invoke_agent {AGENT_NAME}", kind=SpanKind.INTERNAL, attributes=attributes,
            record_exception=False, set_status_on_exception=False) as span:
        yield span


def _ended(span: Span, result: AgentRunResult) -> None:
    span.set_attributes({
        "gen_ai.usage.input_tokens": result.usage.input_tokens,
        "gen_ai.usage.output_tokens": result.usage.output_tokens,
        "tether.status": result.status, "tether.steps": result.steps,
        "tether.cost_usd": result.usage.cost_usd, "tether.stop_reason": result.stop_reason,
    })


class _RunInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_RunOutbound(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        if workflow.info().workflow_type != AGENT_RUN:
            return await super().execute_workflow(input)
        with _agent_span(input.args[0] if input.args else None) as span:
            try:
                result = await super().execute_workflow(input)
            except workflow.ContinueAsNewError:
                span.set_attribute("tether.continued_as_new", True)
                raise
            except asyncio.CancelledError:
                _run_ended("cancelled")
                span.set_attribute("tether.status", "cancelled")
                raise
            except Exception as error:
                # A bug fails the workflow task, which Temporal retries: not the run's end.
                if workflow.is_failure_exception(error):
                    _run_ended("failed")
                    span.set_attributes({"tether.status": "failed",
                                         "error.type": getattr(error, "type", None) or type(error).__name__})
                    span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
                raise
            if isinstance(result, AgentRunResult):
                _run_ended(result.status, result)
                _ended(span, result)
            return result


class _RunOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        handle = super().start_activity(input)
        if input.activity in (MODEL_CALL, ACQUIRE_SANDBOX):
            handle.add_done_callback(lambda done: _activity_done(input, done))
        return handle
