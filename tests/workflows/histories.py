"""Reading a run's event histories: which activities ran, how often, with what, and whether
the histories replay against today's workflow code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from tether.contracts import Message
from tether.contracts.activities import TOOL_CALL, TOOL_CALL_HERE
from tether.workflows.agent import AgentRun

from tests.helpers import conversations

_payloads = pydantic_data_converter.payload_converter
_OUTCOMES = {
    "activity_task_completed_event_attributes": "completed",
    "activity_task_failed_event_attributes": "failed",
    "activity_task_timed_out_event_attributes": "timed_out",
    "activity_task_canceled_event_attributes": "canceled",
}


@dataclass
class ActivityRun:
    """One scheduled activity, as its events tell it."""

    type: str
    summary: str
    input: dict[str, Any]
    attempt: int = 0
    """The attempt that ended it (Temporal records only the last start of a retried activity)."""
    outcome: str = "pending"
    result: Any = None


async def executions(client: Client, handle: WorkflowHandle) -> list[WorkflowHistory]:
    """Every execution of a run, first to last, following continue-as-new."""
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    histories = []
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.HasField("workflow_execution_continued_as_new_event_attributes") else None)
    return histories


async def activities(client: Client, handle: WorkflowHandle) -> list[ActivityRun]:
    """The activities of every execution of a run, in the order they were scheduled."""
    runs: list[ActivityRun] = []
    for history in await executions(client, handle):
        runs += activities_in(history.events)
    return runs


def activities_in(events: list[HistoryEvent]) -> list[ActivityRun]:
    """The scheduled activities, and the tool calls that ran as local activities on the
    workflow's worker (`tool_call_here` markers whose call finished there; one handed on to
    the host queue shows as that queue's `tool_call`)."""
    by_id: dict[int, ActivityRun] = {}
    for event in events:
        kind = event.WhichOneof("attributes")
        if kind == "marker_recorded_event_attributes":
            here = local_tool_call(event)
            if here is not None:
                by_id[event.event_id] = here
        elif kind == "activity_task_scheduled_event_attributes":
            attributes = event.activity_task_scheduled_event_attributes
            by_id[event.event_id] = ActivityRun(
                type=attributes.activity_type.name,
                summary=_payloads.from_payload(event.user_metadata.summary, str),
                input=_payloads.from_payloads(attributes.input.payloads, [dict])[0],
            )
        elif kind == "activity_task_started_event_attributes":
            attributes = event.activity_task_started_event_attributes
            by_id[attributes.scheduled_event_id].attempt = attributes.attempt
        elif kind in _OUTCOMES:
            attributes = getattr(event, kind)
            run = by_id[attributes.scheduled_event_id]
            run.outcome = _OUTCOMES[kind]
            if kind == "activity_task_completed_event_attributes":
                run.result = _payloads.from_payloads(attributes.result.payloads)[0]
    return list(by_id.values())


def local_result(event: HistoryEvent, activity_type: str) -> dict[str, Any] | None:
    """The result a local activity of `activity_type` recorded in this marker, or None when
    the event is no such marker (a patch's marker has no `data`)."""
    details = event.marker_recorded_event_attributes.details
    if "data" not in details or "result" not in details:
        return None
    if json.loads(details["data"].payloads[0].data).get("activity_type") != activity_type:
        return None
    return dict(json.loads(details["result"].payloads[0].data))


def local_tool_call(event: HistoryEvent) -> ActivityRun | None:
    """A `tool_call_here` marker that ran its call, as the activity run it stands for; its
    input is not recorded, only which call it answered (`step`, `index`)."""
    result = local_result(event, TOOL_CALL_HERE)
    if result is None or result.get("output") is None:
        return None
    attempt = json.loads(event.marker_recorded_event_attributes.details["data"].payloads[0].data)["attempt"]
    summary = (_payloads.from_payload(event.user_metadata.summary, str)
               if event.user_metadata.HasField("summary") else "")
    return ActivityRun(type=TOOL_CALL_HERE, summary=summary,
                       input={"step": result["step"], "index": result["index"]},
                       attempt=attempt, outcome="completed", result=result["output"])


def tool_calls(runs: list[ActivityRun]) -> list[ActivityRun]:
    """The sandbox tool calls, whichever way each ran: on the host queue or on the
    workflow's worker."""
    return [run for run in runs if run.type in (TOOL_CALL, TOOL_CALL_HERE)]


def summaries(runs: list[ActivityRun]) -> list[str]:
    return [run.summary for run in runs]


def conversation(runs: list[ActivityRun]) -> list[Message]:
    """The conversation as the last model call left it, read from the content store: what
    the model was actually given, step by step."""
    last_call = [run for run in runs if run.type == "model_call" and run.result][-1]
    return conversations().load(last_call.result["head"])


async def assert_replays(client: Client, handle: WorkflowHandle) -> None:
    """Replays every execution of a run; raises on any non-determinism."""
    replayer = Replayer(workflows=[AgentRun], data_converter=pydantic_data_converter)
    for history in await executions(client, handle):
        await replayer.replay_workflow(history)
