"""OpenTelemetry spans for every run, in OpenTelemetry's GenAI semantic conventions.

Temporal's history already records what happened; spans add where the time went, in the
format every tracing backend reads. A run is an `invoke_agent tether` span (in the workflow,
`workflows/telemetry.py`), each model call a `chat {model}` span and each tool call an
`execute_tool {tool}` span (here, in the activities), with sandbox spans beside them, under
Temporal's own spans from `temporalio.contrib.opentelemetry`'s replay-safe interceptor
(workflow spans with real durations, not ended again when a worker replays a run).

Where spans go: over OTLP/HTTP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, honouring the other standard `OTEL_*`
variables (headers, timeout, service name, resource attributes, batching); otherwise, as
JSON lines appended to `$TETHER_DATA_DIR/traces.jsonl` (`TETHER_TRACE_FILE` moves it, and
with OTLP set adds it; `off` turns it off). Message contents, tool arguments and results
enter spans only with `TETHER_TRACE_CONTENT=1`: they may hold what a run must keep private.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from threading import Lock
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from temporalio import activity
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import (
    OpenTelemetryInterceptor,
    ReplaySafeTracerProvider,
    TracingInterceptor,
    create_tracer_provider,
)
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, WorkflowRunner
from temporalio.worker import Interceptor as WorkerInterceptor
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from tether.contracts import Message, ModelSpec, ModelTurn, ToolCall, ToolCallOutput, ToolResult
from tether.contracts.activities import (
    ACQUIRE_SANDBOX,
    FUNCTION_CALL,
    MCP_CALL,
    RELEASE_SANDBOX,
    TOOL_CALL,
    TOOL_CALL_HERE,
    ToolCallHereInput,
    ToolCallHereOutput,
)
from tether.egress.proxy import Decision
from tether.metrics import provider_name, request_model

log = logging.getLogger("tether.tracing")
TRACER = "tether"
EGRESS_LISTED = 20
_content = False
"""Whether spans carry contents: set with the process's tracer provider, as it is, once."""


class JsonLinesExporter(SpanExporter):
    """One span a line, appended: cheap, greppable, and readable after the fact."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self.lock, self.path.open("a") as f:
            f.write(lines)
        return SpanExportResult.SUCCESS


class TraceSettings(Protocol):
    """What tracing reads of a process's settings (`TetherSettings` has it): passed in by
    whoever sets a process up, so nothing the activities import reads settings itself."""

    @property
    def otel_exporter_otlp_protocol(self) -> str | None: ...
    @property
    def otlp_traces_endpoint(self) -> str | None: ...
    @property
    def trace_path(self) -> Path | None: ...
    @property
    def trace_file(self) -> str | None: ...
    @property
    def trace_content(self) -> bool: ...


def check_exporter(settings: TraceSettings) -> None:
    """Raises ValueError, in one line, when spans go over OTLP in a protocol tether lacks."""
    protocol = settings.otel_exporter_otlp_protocol
    if settings.otlp_traces_endpoint is not None and protocol not in (None, "http/protobuf"):
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: tether exports OTLP "
            "over HTTP; set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and point "
            "OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318 by convention)")


def exporters(settings: TraceSettings) -> list[SpanExporter]:
    """Where this process's spans go, as the settings say."""
    chosen: list[SpanExporter] = []
    endpoint = settings.otlp_traces_endpoint
    if endpoint is not None:
        check_exporter(settings)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Headers, timeout, compression and certificates come from the OTEL_* variables.
        chosen.append(OTLPSpanExporter(endpoint=endpoint))
    if settings.trace_path is not None and (endpoint is None or settings.trace_file):
        chosen.append(JsonLinesExporter(settings.trace_path))
    return chosen


def configure(settings: TraceSettings, service: str = "tether-worker") -> bool:
    """Sets up this process's tracer provider from `settings`, unless one is set already
    (OpenTelemetry's is one per process: the first caller's wins). Returns whether a
    replay-safe provider is in place, which Temporal's workflow spans need."""
    global _content
    current = trace.get_tracer_provider()
    if isinstance(current, ReplaySafeTracerProvider):
        return True
    if isinstance(current, SdkTracerProvider):
        return False  # the application's own, not replay-safe
    chosen = exporters(settings)
    if not chosen:
        return False
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service}))
    provider = create_tracer_provider(resource=resource)
    for exporter in chosen:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _content = settings.trace_content
    return True


def interceptors(settings: TraceSettings) -> list[Interceptor | WorkerInterceptor]:
    """Client (and so worker) interceptors that trace runs as the settings say (none when
    spans go nowhere): Temporal's spans first, so tether's are their children."""
    if configure(settings):
        return [OpenTelemetryInterceptor(add_temporal_spans=True), ActivitySpans()]
    if isinstance(trace.get_tracer_provider(), SdkTracerProvider):
        log.warning("the process's tracer provider is not replay-safe: workflow spans are "
                    "instants; make it with temporalio.contrib.opentelemetry.create_tracer_provider")
        # Runs started from the Temporal CLI carry no trace context; trace them all the same.
        return [TracingInterceptor(always_create_workflow_spans=True)]
    return []


def workflow_runner(runner: WorkflowRunner | None) -> WorkflowRunner:
    """The worker's workflow runner with OpenTelemetry passed into the workflow sandbox, as
    `OpenTelemetryPlugin` does: the run's span must be made by the process's provider."""
    if runner is None:
        raise ValueError("no workflow runner to pass OpenTelemetry through")
    if isinstance(runner, SandboxedWorkflowRunner):
        return dataclasses.replace(
            runner, restrictions=runner.restrictions.with_passthrough_modules("opentelemetry"))
    return runner


# --- the spans the activities make -------------------------------------------------------
class ActivitySpans(WorkerInterceptor):
    """`execute_tool` spans around every kind of tool call (in a sandbox, a function, an MCP
    server's) and `sandbox` spans around making and removing sandboxes, from each
    activity's input and result: one place for all of them, not one in each activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivitySpansInbound(next)


class _ActivitySpansInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        kind = activity.info().activity_type
        arg: Any = input.args[0] if input.args else None
        if kind == TOOL_CALL_HERE and isinstance(arg, ToolCallHereInput):
            with tool_span(arg.call.call, arg.call.call.arguments, conversation_id=arg.call.workflow_id,
                           step=arg.call.step) as current:
                here = await super().execute_activity(input)
                if isinstance(here, ToolCallHereOutput) and here.output is not None:
                    tool_answered(current, here.output.result)
                else:
                    # The call goes on on the host queue, whose activity has a span of its own.
                    current.set_attribute("tether.tool.handed_off", True)
                return here
        if kind in (TOOL_CALL, FUNCTION_CALL, MCP_CALL) and isinstance(getattr(arg, "call", None), ToolCall):
            with tool_span(arg.call, arg.call.arguments, conversation_id=arg.workflow_id,
                           step=arg.step) as current:
                output = await super().execute_activity(input)
                if isinstance(output, ToolCallOutput):
                    tool_answered(current, output.result)
                return output
        if kind == ACQUIRE_SANDBOX and arg is not None:
            with sandbox_span("acquire", conversation_id=arg.workflow_id,
                              image=arg.spec.image) as current:
                handle = await super().execute_activity(input)
                current.set_attribute("tether.sandbox.container_id", handle.container_id)
                return handle
        if kind == RELEASE_SANDBOX and arg is not None:
            with sandbox_span("release", container_id=arg.container_id):
                return await super().execute_activity(input)
        return await super().execute_activity(input)


@contextmanager
def span(name: str, attributes: dict[str, Any], kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:
    """A span that, when the work in it raises, says so with `error.type` (an
    `ApplicationError`'s type, else the exception's class) and an error status."""
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes,
                                      record_exception=False, set_status_on_exception=False) as current:
        try:
            yield current
        except BaseException as error:
            if "error.type" not in (getattr(current, "attributes", None) or {}):  # said already
                failed(current, getattr(error, "type", None) or type(error).__name__, str(error))
            raise


def failed(current: Span, error_type: str, description: str = "") -> None:
    current.set_attribute("error.type", error_type)
    current.set_status(Status(StatusCode.ERROR, description[:500] or error_type))


def chat_span(spec: ModelSpec, *, conversation_id: str, step: int,
              messages: Sequence[Message] = ()) -> Any:
    """A model call: `chat {model}`, a client span, with the conversation when opted in."""
    model = request_model(spec)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider_name(spec),
        "gen_ai.request.model": model, "gen_ai.conversation.id": conversation_id,
        "tether.step": step,
    }
    if _content:
        system = [m.content for m in messages if m.role == "system" and m.content]
        if system:
            attributes["gen_ai.system_instructions"] = json.dumps(
                [{"type": "text", "content": text} for text in system])
        attributes["gen_ai.input.messages"] = json.dumps(
            [as_genai(m) for m in messages if m.role != "system"])
    return span(f"chat {model}", attributes, SpanKind.CLIENT)


def chat_answered(current: Span, spec: ModelSpec, turn: ModelTurn, cost_usd: float | None) -> None:
    reason = turn.finish_reason or ("tool_calls" if turn.tool_calls else "stop")
    current.set_attributes({
        "gen_ai.response.model": turn.model or request_model(spec),
        "gen_ai.response.finish_reasons": [reason],
        "gen_ai.usage.input_tokens": turn.usage.input_tokens,
        "gen_ai.usage.output_tokens": turn.usage.output_tokens,
    })
    if cost_usd is not None:
        current.set_attribute("tether.cost_usd", cost_usd)
    if _content:
        answer = as_genai(Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls))
        current.set_attribute("gen_ai.output.messages", json.dumps([{**answer, "finish_reason": reason}]))


def tool_span(call: ToolCall, arguments: dict[str, Any], *, conversation_id: str, step: int) -> Any:
    """A tool call: `execute_tool {tool}`, with its arguments when opted in."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": call.name,
        "gen_ai.tool.call.id": call.id, "gen_ai.tool.type": "extension",
        "gen_ai.conversation.id": conversation_id, "tether.step": step,
    }
    if _content:
        attributes["gen_ai.tool.call.arguments"] = json.dumps(arguments)
    return span(f"execute_tool {call.name}", attributes)


def tool_answered(current: Span, result: ToolResult) -> None:
    current.set_attributes({"tether.tool.exit_code": result.exit_code,
                            "tether.tool.timed_out": result.timed_out,
                            "tether.tool.duration_ms": result.duration_ms})
    if result.timed_out:
        failed(current, "timeout")
    elif result.exit_code != 0:
        failed(current, "tool_error", f"exit code {result.exit_code}")
    if _content:
        current.set_attribute("gen_ai.tool.call.result", result.model_dump_json())


def egress_seen(decisions: Sequence[Decision]) -> None:
    """The egress proxy's decisions during a tool call, on the call's span (the current one):
    destinations allowed and refused, and the bytes sent and received through the proxy."""
    if not decisions:
        return
    current = trace.get_current_span()
    allowed = sorted({d.destination for d in decisions if d.allowed})
    denied = sorted({d.destination for d in decisions if not d.allowed})
    # Bounded, as the result's list is: a tool trying every host can't grow a span without end.
    current.set_attributes({
        "tether.egress.allowed": allowed[:EGRESS_LISTED], "tether.egress.denied": denied[:EGRESS_LISTED],
        "tether.egress.requests": len(decisions),
        "tether.egress.bytes_sent": sum(d.sent for d in decisions),
        "tether.egress.bytes_received": sum(d.received for d in decisions),
    })


def sandbox_span(operation: str, *, conversation_id: str | None = None, **attributes: Any) -> Any:
    """A sandbox's lifecycle beside the calls: `sandbox acquire` and `sandbox release`."""
    labelled = {f"tether.sandbox.{k}": v for k, v in attributes.items() if v is not None}
    if conversation_id:
        labelled["gen_ai.conversation.id"] = conversation_id
    return span(f"sandbox {operation}", labelled)


def as_genai(message: Message) -> dict[str, Any]:
    """A message in the GenAI conventions' shape: a role and its parts."""
    parts: list[dict[str, Any]] = []
    if message.role == "tool":
        parts.append({"type": "tool_call_response", "id": message.tool_call_id,
                      "response": message.content})
    elif message.content:
        parts.append({"type": "text", "content": message.content})
    parts += [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
              for c in message.tool_calls]
    return {"role": message.role, "parts": parts}
