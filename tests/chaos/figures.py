"""The chaos suite's figures, measured from outside: when each run made progress, read from
its event history (the server's clock, which is this machine's), against when each fault
was injected and repaired (the suite's clock, the same one).

A run has made progress again after a fault when one of its tool calls completed and the run
went on from it: it scheduled its next activity (or ended). A completed call alone is not
enough: its result may wait for a dead worker's sticky queue. The time to progress again of
a run the fault affected is from the fault's repair (a new worker process started, the
Temporal server or the engine answering again; for a killed executor or container, which
nothing repairs, from the kill) to that moment.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import TaskQueueKind, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from tether.contracts.activities import ACQUIRE_SANDBOX, TOOL_CALL

from tests.workflows.histories import local_tool_call

KINDS = {
    "worker_kill": "worker killed (SIGKILL), a new one started",
    "executor_kill": "executor killed inside a run's container",
    "container_kill": "a run's container killed (`docker kill`)",
    "temporal_kill": "Temporal dev server killed (SIGKILL), restarted on its database",
    "engine_restart": "Docker engine stopped and started again",
}


TAKES_SANDBOXES = {"executor_kill", "container_kill", "engine_restart"}
"""Faults after which a run's progress counts only in its new sandbox."""


@dataclass
class Fault:
    kind: str
    at: float
    """When it was injected (seconds since the epoch)."""
    repaired: float
    """When what it broke was started again; the kill itself where nothing is."""
    target: str | None = None
    """The run whose sandbox it hit, for the faults that hit one run."""
    detail: dict[str, float] = field(default_factory=dict)


@dataclass
class RunEvents:
    tool_completions: list[float]
    acquisitions: list[float]
    """When each sandbox acquisition completed."""
    moves: list[float]
    """When the run scheduled an activity or ended: it went on from what it had."""
    acquires: int
    closed: float | None
    timeline: list[tuple[float, str]] = field(default_factory=list)
    """Every event as (time, what): for reading what a recovery waited on."""


def event_seconds(event: HistoryEvent) -> float:
    return event.event_time.ToMicroseconds() / 1e6


def run_events(events: list[HistoryEvent]) -> RunEvents:
    types: dict[int, str] = {}
    completions: list[float] = []
    acquisitions: list[float] = []
    moves: list[float] = []
    closed = None
    timeline = []
    for event in events:
        kind = event.WhichOneof("attributes")
        timeline.append((event_seconds(event), describe(event, types)))
        if kind in ("activity_task_scheduled_event_attributes",
                    "workflow_execution_completed_event_attributes"):
            moves.append(event_seconds(event))
        if kind == "activity_task_scheduled_event_attributes":
            types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif kind == "activity_task_completed_event_attributes":
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            if types.get(scheduled) == TOOL_CALL:
                completions.append(event_seconds(event))
            elif types.get(scheduled) == ACQUIRE_SANDBOX:
                acquisitions.append(event_seconds(event))
        elif kind == "marker_recorded_event_attributes" and local_tool_call(event) is not None:
            # A call that ran on the workflow's worker: its result is recorded when the
            # workflow task that ran it completes.
            completions.append(event_seconds(event))
        elif kind == "workflow_execution_completed_event_attributes":
            closed = event_seconds(event)
    return RunEvents(tool_completions=sorted(completions), acquisitions=sorted(acquisitions),
                     moves=sorted(moves),
                     acquires=sum(1 for name in types.values() if name == ACQUIRE_SANDBOX),
                     closed=closed, timeline=timeline)


def describe(event: HistoryEvent, types: dict[int, str]) -> str:
    """The event's type, and for an activity or workflow task what it was and how it ended."""
    kind = event.WhichOneof("attributes") or ""
    attributes = getattr(event, kind)
    text = kind.removesuffix("_event_attributes")
    if kind == "activity_task_scheduled_event_attributes":
        return f"{text} {attributes.activity_type.name}"
    scheduled = getattr(attributes, "scheduled_event_id", 0)
    if kind.startswith("activity_task_") and scheduled in types:
        text += f" {types[scheduled]}"
    if kind == "activity_task_started_event_attributes":
        text += f" attempt {attributes.attempt}"
    if kind.endswith("timed_out_event_attributes"):
        text += f" ({TimeoutType.Name(attributes.timeout_type)})"
    if kind == "activity_task_failed_event_attributes":
        text += f" ({attributes.failure.message[:120]})"
    if kind == "workflow_task_scheduled_event_attributes" and (
            attributes.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY):
        text += " (sticky)"
    return text


def timeline_around(fault: Fault, events: RunEvents, after_s: float = 30) -> list[str]:
    return [f"{t - fault.at:+7.2f} s  {what}" for t, what in events.timeline
            if fault.at - 2 <= t <= fault.at + after_s]


def progress_after(fault: Fault, runs: dict[str, RunEvents]) -> dict[str, dict[str, float]]:
    """For each run the fault affected (every run still calling tools, or the one it hit):
    seconds from the fault and from its repair until it made progress again."""
    samples = {}
    for workflow_id, events in runs.items():
        if fault.target is not None and workflow_id != fault.target:
            continue
        if not any(t > fault.at for t in events.tool_completions):
            continue  # its calls were done before the fault
        since = fault.at
        if fault.kind in TAKES_SANDBOXES:  # a call in the sandbox it replaced counts
            since = next((t for t in events.acquisitions if t > fault.at), float("inf"))
        completed = [t for t in events.tool_completions if t > since]
        if not completed:
            continue  # not yet
        went_on = next((t for t in events.moves if t >= completed[0]), None)
        if went_on is None:
            continue  # not yet
        samples[workflow_id] = {"from_fault_s": went_on - fault.at,
                                "from_repair_s": max(0.0, went_on - fault.repaired),
                                "timeline": timeline_around(fault, events, went_on - fault.at + 1)}
    return samples


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "max": None}
    return {"n": len(values), "p50": round(statistics.median(values), 2), "max": round(max(values), 2)}


@dataclass
class Report:
    seed: int
    runs: int
    steps: int
    seconds: float
    faults: list[Fault]
    completed: int
    duplicates: int
    missing: int
    failed_calls: int
    sandboxes_lost: int
    containers_left: int
    progress: dict[str, dict[str, Any]]
    worker_rss_mb: list[dict[str, float]]
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Every affected run's recovery after every fault, with its events around it."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def markdown(self) -> str:
        by_kind: dict[str, int] = {}
        for fault in self.faults:
            by_kind[fault.kind] = by_kind.get(fault.kind, 0) + 1
        lines = [
            f"Seed {self.seed}; {self.runs} runs of {self.steps} steps; {len(self.faults)} faults; "
            f"{self.seconds:.0f} s from the first run's start to the last run's end.",
            "",
            "| fault | injected | runs affected | to progress again from the repair, p50 / max "
            "| from the fault, p50 / max |",
            "|---|---|---|---|---|",
        ]
        for kind, label in KINDS.items():
            figures = self.progress.get(kind, {})
            repair, fault = figures.get("from_repair_s", {}), figures.get("from_fault_s", {})
            lines.append(f"| {label} | {by_kind.get(kind, 0)} | {repair.get('n', 0)} "
                         f"| {_s(repair.get('p50'))} / {_s(repair.get('max'))} "
                         f"| {_s(fault.get('p50'))} / {_s(fault.get('max'))} |")
        lines += [
            "",
            "| outcome | value |",
            "|---|---|",
            f"| runs completed | {self.completed} of {self.runs} |",
            f"| duplicate side effects (an append made twice in one sandbox) | {self.duplicates} |",
            f"| lost side effects (an append missing from its sandbox's ledger) | {self.missing} |",
            f"| tool calls that failed | {self.failed_calls} |",
            f"| sandboxes lost and replaced (the call ran again in the new one) | {self.sandboxes_lost} |",
            f"| containers left on the engine | {self.containers_left} |",
            "| worker RSS per process life, MB (after 10 s / peak / at its end) | "
            + "; ".join(f"{w['after_10s']:.0f} / {w['peak']:.0f} / {w['end']:.0f}"
                        for w in self.worker_rss_mb) + " |",
        ]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "chaos.json").write_text(self.to_json())
        (directory / "chaos.md").write_text(self.markdown())
        return directory / "chaos.md"


def _s(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f} s"
