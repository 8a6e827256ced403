"""A tool call runs on the worker that runs the workflow when that worker holds the sandbox:
a local activity, no dispatch through Temporal's matching. A call that outruns the hand-off
goes on to the sandbox's host queue, which joins it by its key: it runs once, whatever the
path. What the history, the sandbox and the next call show afterwards is what is checked.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from tether import client as tether
from tether.contracts.activities import TOOL_CALL, TOOL_CALL_HERE
from tether.workflows.options import DEFAULT_OPTIONS

from tests.helpers import sandboxes_of
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, assert_replays, executions, local_result

HAND_OFF = DEFAULT_OPTIONS.tool_here_hand_off.total_seconds()


def local_results(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    """What each `tool_call_here` marker recorded, handed-off calls included."""
    return [r for e in events if (r := local_result(e, TOOL_CALL_HERE)) is not None]


async def history_of(client: Client, handle: Any) -> list[HistoryEvent]:
    return [event for history in await executions(client, handle) for event in history.events]


async def test_calls_on_the_worker_holding_the_sandbox_run_there_without_a_dispatch(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("here",
                     turn(shell="echo one >> /workspace/log; cat /workspace/log"),
                     turn(shell="echo two >> /workspace/log; cat /workspace/log",
                          python="print(6 * 7)"),
                     turn("{{last_output}}")),
        task_queue=worker)
    result = await handle.result()

    assert result.status == "completed"
    assert result.output == "42"
    transcript = await tether.get_transcript(temporal_client, handle.id)
    assert transcript[0].tool_results[0].stdout == "one\n"
    assert transcript[1].tool_results[0].stdout == "one\ntwo\n"  # the same sandbox, once each
    events = await history_of(temporal_client, handle)
    here = local_results(events)
    assert len(here) == 3 and all(r["output"]["result"]["exit_code"] == 0 for r in here)
    assert [r.type for r in await activities(temporal_client, handle)].count(TOOL_CALL) == 0
    assert not sandboxes_of(handle.id)  # released when the run ended
    await assert_replays(temporal_client, handle)


async def test_a_call_that_outruns_the_hand_off_is_joined_on_the_host_queue_and_runs_once(
    temporal_client: Client, worker: str
):
    slow = f"echo start >> /workspace/runs; sleep {HAND_OFF + 1.5:g}; echo done; cat /workspace/runs"
    handle = await tether.start_run(
        temporal_client,
        scripted_run("hand off", turn(shell=slow), turn(shell="cat /workspace/runs"),
                     turn("{{last_output}}")),
        task_queue=worker)
    result = await handle.result()

    assert result.status == "completed"
    # Started once: the host queue's activity joined the call the local one started.
    assert result.output == "start"
    transcript = await tether.get_transcript(temporal_client, handle.id)
    assert transcript[0].tool_results[0].stdout == "done\nstart\n"
    events = await history_of(temporal_client, handle)
    first, second = local_results(events)
    assert first["output"] is None and "handed to the host queue" in first["why_not"]
    assert second["output"]["result"]["stdout"] == "start\n"  # the next call ran here again
    remote = [r for r in await activities(temporal_client, handle) if r.type == TOOL_CALL]
    assert [(r.summary, r.outcome) for r in remote] == [("step 1 · shell", "completed")]
    assert remote[0].result["result"]["stdout"] == "done\nstart\n"
    await assert_replays(temporal_client, handle)
