"""Where a run's time goes, read from its own event history: the time between turns, each
workflow task's processing on the worker, and each activity's wait for dispatch and its run.

Event times are the server's clock when it wrote each event: a workflow task's processing
is WorkflowTaskStarted to WorkflowTaskCompleted (the worker has the task in between); an
activity's dispatch wait is ActivityTaskScheduled to ActivityTaskStarted, and its run
ActivityTaskStarted to ActivityTaskCompleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent


def seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def scheduled(events: Sequence[HistoryEvent], is_type: Callable[[str], bool]) -> list[int]:
    """Indexes of the events that schedule an activity whose type `is_type` accepts."""
    return [
        i for i, event in enumerate(events)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and is_type(event.activity_task_scheduled_event_attributes.activity_type.name)
    ]


def turn_seconds(events: Sequence[HistoryEvent], is_model: Callable[[str], bool]) -> list[float]:
    """Seconds from each model call's scheduling to the next's: one whole turn each."""
    starts = scheduled(events, is_model)
    return [seconds(events[b]) - seconds(events[a]) for a, b in pairwise(starts)]


def workflow_task_seconds(
    events: Sequence[HistoryEvent], since: int = 0, *,
    local_type: str | None = None, local_seconds: Sequence[float] = (),
) -> list[float]:
    """Processing time of each workflow task that started at or after event index `since`.

    A local activity runs inside the workflow task that records its marker: with
    `local_type`, the time each such activity took on the worker (`local_seconds`, one per
    marker of that type in the whole history, in order) is taken off its task's time.
    """
    by_id = {event.event_id: event for event in events}
    took: list[float] = []
    marker = 0
    for index, event in enumerate(events):
        if local_type is not None and is_local(event, local_type):
            if took and index > since:
                took[-1] -= local_seconds[marker]
            marker += 1
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and index >= since:
            started = by_id[event.workflow_task_completed_event_attributes.started_event_id]
            took.append(seconds(event) - seconds(started))
    return took


def workflow_task_waits(events: Sequence[HistoryEvent], since: int = 0) -> list[float]:
    """Seconds each workflow task that started at or after event index `since` waited between
    its scheduling and a worker taking it: the server's dispatch."""
    by_id = {event.event_id: event for event in events}
    return [
        seconds(event) - seconds(by_id[event.workflow_task_started_event_attributes.scheduled_event_id])
        for index, event in enumerate(events)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and index >= since
    ]


@dataclass
class ActivitySpan:
    name: str
    waited: float
    """Scheduled to started: waiting on its queue for a worker to take it."""
    ran: float
    """Started to completed: the worker had it."""


def activity_spans(events: Sequence[HistoryEvent], is_type: Callable[[str], bool]) -> list[ActivitySpan]:
    """Every completed activity whose type `is_type` accepts, in order of scheduling."""
    by_id = {event.event_id: event for event in events}
    spans = []
    for event in events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        done = event.activity_task_completed_event_attributes
        started, sched = by_id[done.started_event_id], by_id[done.scheduled_event_id]
        name = sched.activity_task_scheduled_event_attributes.activity_type.name
        if is_type(name):
            spans.append(ActivitySpan(name, seconds(started) - seconds(sched),
                                      seconds(event) - seconds(started)))
    return spans


def is_local(event: HistoryEvent, activity_type: str) -> bool:
    """Whether the event is the marker of a completed local activity of `activity_type`,
    whose `data` names its type."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return False
    data = event.marker_recorded_event_attributes.details.get("data")
    return data is not None and bool(data.payloads) and (
        json.loads(data.payloads[0].data).get("activity_type") == activity_type)


def local_activities(events: Sequence[HistoryEvent], activity_type: str) -> int:
    """How many local activities of `activity_type` completed."""
    return sum(is_local(event, activity_type) for event in events)
