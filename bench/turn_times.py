"""Where a run's time goes, read from its own event history: the time between turns, each
workflow task's processing on the worker, and each activity's wait for dispatch and its run.

Event times are the server's clock when it wrote each event: a workflow task's processing
is WorkflowTaskStarted to WorkflowTaskCompleted (the worker has the task in between); an
activity's dispatch wait is ActivityTaskScheduled to ActivityTaskStarted, and its run
ActivityTaskStarted to ActivityTaskCompleted.
"""

from __future__ import annotations

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


def workflow_task_seconds(events: Sequence[HistoryEvent], since: int = 0) -> list[float]:
    """Processing time of each workflow task that started at or after event index `since`."""
    by_id = {event.event_id: event for event in events}
    return [
        seconds(event) - seconds(by_id[event.workflow_task_completed_event_attributes.started_event_id])
        for event in events[since:]
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
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
