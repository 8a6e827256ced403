"""How many bytes of event history each step of an agent run adds.

A size is the serialized protobuf size of the events (`HistoryEvent.ByteSize()`), the form
the server stores and counts against its history size limit; the JSON export is about twice
as large and would flatter no one. A step runs from the scheduling of its model activity to
the scheduling of the next step's, so it owns its model call, its tool calls, and the
workflow tasks, search-attribute upserts and markers in between.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import pairwise

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent


def step_starts(events: Sequence[HistoryEvent], model_activity: str) -> list[int]:
    """Indexes of the events that schedule a model activity: one per step, in order."""
    return [
        i for i, event in enumerate(events)
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == model_activity
    ]


def step_sizes(events: Sequence[HistoryEvent], model_activity: str) -> list[int]:
    """Bytes added by each step that has a next one; `sizes[k - 1]` is step k's."""
    starts = step_starts(events, model_activity)
    sizes = [event.ByteSize() for event in events]
    return [sum(sizes[a:b]) for a, b in pairwise(starts)]


def around(sizes: Sequence[int], step: int, half: int) -> float:
    """The mean bytes per step over steps `step - half` to `step + half`: one step alone
    varies by a few bytes as counters gain digits and workflow tasks batch differently."""
    window = sizes[step - 1 - half: step + half]
    if len(window) != 2 * half + 1:
        raise ValueError(f"steps {step - half} to {step + half} are not all in {len(sizes)} steps")
    return sum(window) / len(window)


def bytes_by_event_type(
    events: Sequence[HistoryEvent], model_activity: str, first: int, last: int
) -> dict[str, float]:
    """Mean bytes per step by event type over steps `first` to `last`: where a step's bytes go."""
    starts = step_starts(events, model_activity)
    totals: Counter[str] = Counter()
    for event in events[starts[first - 1]: starts[last]]:
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        totals[name] += event.ByteSize()
    steps = last - first + 1
    return {name: total / steps for name, total in totals.most_common()}


def total_bytes(events: Sequence[HistoryEvent]) -> int:
    return sum(event.ByteSize() for event in events)
