"""Long tool calls heartbeat to Temporal, and cancellation reaches the call's processes."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from tether import client as tether

from tests.helpers import sandboxes_of, wait_for
from tests.sandbox.direct import call, running_commands
from tests.scripts import scripted_run, turn


async def pending_tool_call(handle: WorkflowHandle):
    description = await handle.describe()
    for activity in description.raw_description.pending_activities:
        if activity.activity_type.name == "tool_call":
            return activity
    return None


async def test_a_call_longer_than_the_heartbeat_timeout_finishes_in_its_first_attempt(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "long", turn(shell="sleep 8; echo slept"), turn("{{last_output}}")), task_queue=worker)

    async def heartbeat_seen() -> bool:
        activity = await pending_tool_call(handle)
        return activity is not None and activity.HasField("last_heartbeat_time")

    await wait_for(heartbeat_seen, what="the tool call's first heartbeat")
    result = await handle.result()
    assert result.output is not None and result.output.strip() == "slept"
    events = [e async for e in handle.fetch_history_events()]
    [scheduled] = [e for e in events if e.HasField("activity_task_scheduled_event_attributes")
                   and e.activity_task_scheduled_event_attributes.activity_type.name == "tool_call"]
    heartbeat_timeout = scheduled.activity_task_scheduled_event_attributes.heartbeat_timeout.ToSeconds()
    assert 0 < heartbeat_timeout < 8  # the call outlived it...
    [started] = [e.activity_task_started_event_attributes for e in events
                 if e.HasField("activity_task_started_event_attributes")
                 and e.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id]
    assert started.attempt == 1  # ...on heartbeats alone: it never timed out and retried


async def test_cancelling_a_run_mid_call_cancels_the_tool_call_within_seconds(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "cancel me", turn(shell="sleep 60"), turn("done")), task_queue=worker)
    await wait_for(lambda: pending_tool_call(handle), what="the tool call to start")
    await asyncio.sleep(1)
    cancelled_at = time.monotonic()
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert time.monotonic() - cancelled_at < 20
    events = [e async for e in handle.fetch_history_events()]
    assert any(e.HasField("activity_task_canceled_event_attributes") for e in events)
    assert sandboxes_of(handle.id) == []


async def test_cancelling_a_call_kills_its_process_group(sandbox: str):
    in_flight = asyncio.ensure_future(call(sandbox, "sleep 60 & sleep 61; echo never", key="c", timeout=120))

    async def sleeping() -> bool:
        return "sleep" in await running_commands(sandbox)

    await wait_for(sleeping, what="the call's sleeps to start")
    in_flight.cancel()
    with pytest.raises(asyncio.CancelledError):
        await in_flight
    recorded = await call(sandbox, "echo never ran twice", key="c")
    assert recorded.exit_code == 137 and "[tether: cancelled]" in recorded.stderr
    assert recorded.stdout == ""
    assert "sleep" not in await running_commands(sandbox)
