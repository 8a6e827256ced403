"""Prometheus metrics for a worker: Temporal's SDK metrics and tether's own, on one endpoint.

`tether worker --metrics-bind 127.0.0.1:9464` (or `TETHER_METRICS_BIND`) makes the process's
Temporal runtime serve `/metrics` there. tether's metrics go through that same runtime's
meter rather than through a meter of OpenTelemetry's own, on purpose: one endpoint serves
both; the workflow's metrics (runs, steps, tool calls, budget stops, sandboxes lost) come
from `workflow.metric_meter()`, which the SDK keeps replay-safe (a replayed workflow does
not count its steps twice); and nothing else needs installing.

This module holds the worker's side: the runtime, and the instruments the activities record
(model calls, tokens, cost) and the count of live sandboxes. The workflow's instruments are in
`workflows/telemetry.py`, which may import nothing of tether's but contracts.

Names follow Prometheus's conventions: counters end in `_total` (the runtime adds it),
durations are in seconds. The GenAI client metrics keep OpenTelemetry's names with dots
made underscores (`gen_ai.client.token.usage` is `gen_ai_client_token_usage`), as any
OTLP-to-Prometheus bridge would write them: the runtime's Prometheus registry refuses dots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from tether.contracts import ModelSpec, Usage
from tether.contracts.labels import model_label
from tether.egress.proxy import Decision
from tether.sandbox.manager import LABEL_WORKER, SandboxManager

log = logging.getLogger("tether.metrics")
LIVE_EVERY_S = 5.0
_watchers: set[asyncio.Task[None]] = set()

TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
"""OpenTelemetry's advised boundaries for `gen_ai.client.token.usage`."""
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92]
"""OpenTelemetry's advised boundaries for `gen_ai.client.operation.duration`, in seconds."""
COST_BUCKETS = [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]
"""Dollars per model call: a float counter the runtime lacks, so cost is a histogram whose
`_sum` is the dollars spent and `_count` the priced calls."""


def serve_prometheus(bind: str) -> Runtime:
    """Makes the process's default Temporal runtime one that serves Prometheus at `bind`
    (`HOST:PORT`). Call it before any client connects: a client keeps the runtime it had."""
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=bind, counters_total_suffix=True, durations_as_seconds=True,
        histogram_bucket_overrides={
            "gen_ai_client_token_usage": TOKEN_BUCKETS,
            "gen_ai_client_operation_duration_seconds": DURATION_BUCKETS,
            "tether_model_cost_usd": COST_BUCKETS,
        })))
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime


def meter_of(client: Client) -> MetricMeter:
    """The meter of the runtime a client (and so its workers) runs on: a no-op one when that
    runtime serves no metrics."""
    return (client.service_client.config.runtime or Runtime.default()).metric_meter


def provider_name(spec: ModelSpec) -> str:
    """`gen_ai.provider.name`: OpenTelemetry's well-known names, tether's own for its
    scripted stand-in."""
    return "tether.scripted" if spec.provider == "scripted" else spec.provider


def request_model(spec: ModelSpec) -> str:
    """`gen_ai.request.model`: the model's name; a script's, stored by reference, is `scripted`."""
    return "scripted" if spec.provider == "scripted" else spec.name


class WorkerMetrics:
    """The instruments a worker's activities record, made once on the worker's meter."""

    def __init__(self, meter: MetricMeter | None = None) -> None:
        meter = meter or MetricMeter.noop
        self.token_usage = meter.create_histogram(
            "gen_ai_client_token_usage", "Tokens per model call (gen_ai.client.token.usage)",
            "{token}")
        self.operation_duration = meter.create_histogram_float(
            "gen_ai_client_operation_duration_seconds",
            "Seconds per model call (gen_ai.client.operation.duration)", "s")
        self.tokens = meter.create_counter(
            "tether_tokens", "Tokens used by model calls, by model and type", "{token}")
        self.cost = meter.create_histogram_float(
            "tether_model_cost_usd", "Dollars per priced model call, by model", "USD")

    def model_call(self, spec: ModelSpec, *, seconds: float, usage: Usage | None,
                   response_model: str | None, cost_usd: float | None,
                   error_type: str | None = None) -> None:
        """One model call, answered (`usage`) or failed (`error_type`)."""
        provider = provider_name(spec)
        model = model_label(provider, request_model(spec))
        labels = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": provider,
                  "gen_ai_request_model": model}
        if response_model:
            labels["gen_ai_response_model"] = model_label(provider, response_model)
        if error_type:
            labels["error_type"] = error_type
        self.operation_duration.record(seconds, labels)
        by_model = {"provider": provider, "model": model}
        if usage is None:
            return
        for kind, count in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            self.token_usage.record(count, {**labels, "gen_ai_token_type": kind})
            self.tokens.add(count, {**by_model, "type": kind})
        if cost_usd is not None:
            self.cost.record(cost_usd, by_model)


def egress_recorder(meter: MetricMeter) -> Callable[[Decision, bool], None]:
    """Counts the egress proxy's decisions, `tether_egress_requests{decision}` (allowed or
    denied), and the bytes of allowed ones, `tether_egress_bytes{direction}` (sent, received)."""
    requests = meter.create_counter(
        "tether_egress_requests", "Requests and tunnels through the egress proxy, by decision",
        "{request}")
    moved = meter.create_counter(
        "tether_egress_bytes", "Bytes through the egress proxy, by direction", "{byte}")

    def record(decision: Decision, new_request: bool) -> None:
        if new_request:  # otherwise bytes a tunnel moved after its decision was told
            requests.add(1, {"decision": "allowed" if decision.allowed else "denied"})
        for direction, count in (("sent", decision.sent), ("received", decision.received)):
            if count:
                moved.add(count, {"direction": direction})
    return record


def watch_live_sandboxes(sandboxes: SandboxManager, worker_id: str, meter: MetricMeter, *,
                         until: asyncio.Future[None]) -> None:
    """Keeps `tether_sandboxes_live` at the number of this worker's containers on its engine
    (the engine is the truth: it counts what a crash left too), every few seconds until
    `until` is done. Nothing when the runtime serves no metrics."""
    if meter is MetricMeter.noop:
        return
    gauge = meter.create_gauge("tether_sandboxes_live",
                               "Sandbox containers of this worker's on its engine now")

    async def watch() -> None:
        while not until.done():
            try:
                live = await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: worker_id})
                gauge.set(len(live), {"worker": worker_id})
            except Exception as error:  # an engine away for a while: next time
                log.debug("could not count sandboxes: %s", error)
            await asyncio.wait([until], timeout=LIVE_EVERY_S)

    task = asyncio.create_task(watch())
    _watchers.add(task)  # held: the loop keeps only weak references to tasks
    task.add_done_callback(_watchers.discard)
