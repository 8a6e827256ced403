"""OpenTelemetry spans for every run: the workflow, each model call and each tool call.

Temporal's history already records what happened; spans add where the time went, in the
format every tracing backend reads. By default a worker appends finished spans as JSON lines
to `$TETHER_DATA_DIR/traces.jsonl` (`TETHER_TRACE_FILE` moves it, `off` turns it off);
a deployment that runs an OTLP collector swaps the exporter for its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from threading import Lock

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor


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


def interceptors(trace_file: Path | None, service: str = "tether-worker") -> list[Interceptor]:
    """Client (and so worker) interceptors that trace runs to `trace_file` (none without one).

    OpenTelemetry's tracer provider is one per process: the first caller sets it up.
    """
    if trace_file is None:
        return []
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(JsonLinesExporter(trace_file)))
        trace.set_tracer_provider(provider)
    # Runs started from the Temporal CLI carry no trace context; trace them all the same.
    return [TracingInterceptor(always_create_workflow_spans=True)]
