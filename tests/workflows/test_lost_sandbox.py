"""A sandbox lost in the middle of a run is removed at once, by the run that declared it lost:
the engine's restart policy brings a crashed sandbox back up empty, and nothing else would
remove it before some later sweep. When the run ends, none of its containers is left."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from tether import client as tether

from tests.helpers import kill_the_executor, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities


async def test_a_sandbox_restarted_under_a_run_is_removed_at_once_and_the_call_runs_again(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("survive", turn(shell="sleep 3; echo finished"), turn("{{last_output}}")),
        task_queue=worker)
    await wait_for(lambda: sandboxes_of(handle.id), what="the run's sandbox")
    [first] = sandboxes_of(handle.id)
    await asyncio.sleep(1)  # the call is running in it
    await kill_the_executor(first.id)

    def replaced() -> bool:
        return [c.id for c in sandboxes_of(handle.id)] not in ([], [first.id])

    await wait_for(replaced, timeout=60, what="a new sandbox")
    # Removed by the run at once, though the engine restarted it: not left to a sweep.
    await wait_for(lambda: first.id not in [c.id for c in sandboxes_of(handle.id)], timeout=30,
                   what="the lost sandbox to be removed")
    result = await handle.result()
    assert result.status == "completed" and result.output == "finished"
    status = await tether.get_status(temporal_client, handle.id)
    assert status.last_error is not None and "lost" in status.last_error
    # The transcript says so too, on the step whose call ran again in the new sandbox.
    [step] = [s for s in await tether.get_transcript(temporal_client, handle.id) if s.tool_calls]
    assert step.note is not None and "shell: sandbox on" in step.note and "lost" in step.note
    summaries = [a.summary for a in await activities(temporal_client, handle)]
    assert summaries.count("acquire sandbox") == 2
    assert "remove lost sandbox" in summaries
    await wait_for(lambda: sandboxes_of(handle.id) == [], timeout=10, what="no container left")


async def test_a_call_whose_new_sandbox_is_lost_too_runs_again_in_a_third(
    temporal_client: Client, worker: str
):
    """Faults one after another (found by the chaos suite: an executor killed, then the engine
    restarted under its replacement): the call is not given up after one replacement."""
    handle = await tether.start_run(
        temporal_client,
        scripted_run("survive twice", turn(shell="sleep 3; echo finished"), turn("{{last_output}}")),
        task_queue=worker)
    seen: list[str] = []
    for _ in range(2):
        await wait_for(lambda: [c.id for c in sandboxes_of(handle.id) if c.id not in seen],
                       timeout=60, what="the call's next sandbox")
        [current] = [c for c in sandboxes_of(handle.id) if c.id not in seen]
        seen.append(current.id)
        await asyncio.sleep(1)  # the call is running in it
        await kill_the_executor(current.id)
    result = await handle.result()
    assert result.status == "completed" and result.output == "finished"
    summaries = [a.summary for a in await activities(temporal_client, handle)]
    assert summaries.count("acquire sandbox") == 3
    [step] = [s for s in await tether.get_transcript(temporal_client, handle.id) if s.tool_calls]
    assert step.note is not None and step.note.count("lost") == 2, step.note
    await wait_for(lambda: sandboxes_of(handle.id) == [], timeout=10, what="no container left")
