"""kill -9 the worker while an idle sandbox's workspace is snapshot, and while it is restored
into a new sandbox: a successor with the same worker id takes the retried attempt, and the
run still ends with its workspace whole, each file's bytes as they were written.

A workspace of about 120 MiB makes each stream last long enough to be caught in the middle;
the history then shows the activity finished on its second attempt (killed in the first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from tether import client as tether

from tests.helpers import sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.test_worker_crash import pending_activity
from tests.workflows.worker_process import WorkerProcess, worker_fleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FILL = ("mkdir -p data/empty && for i in $(seq 1 120); do head -c 1048576 /dev/urandom > data/f$i; done"
        " && chmod 640 data/f1 && ln -s data/f1 first && sha256sum data/f* | sha256sum")
CHECK = ("import hashlib, os, subprocess\n"
         "print(subprocess.run('sha256sum data/f* | sha256sum', shell=True, capture_output=True,"
         " text=True, cwd='/workspace').stdout.strip())\n"
         "print(oct(os.stat('data/f1').st_mode & 0o777), os.readlink('first'), os.listdir('data/empty'))")


@pytest.fixture
async def workers(
    temporal_client: Client, docker_engine, tmp_path: Path,
) -> AsyncIterator[Callable[[], WorkerProcess]]:
    async with worker_fleet(temporal_client, tmp_path, "snap") as make:
        yield make


async def kill_while(handle: WorkflowHandle, activity_type: str, running: WorkerProcess,
                     workers: Callable[[], WorkerProcess]) -> WorkerProcess:
    """Kills the worker once it runs `activity_type`, and starts its successor."""
    await wait_for(lambda: pending_activity(handle, activity_type), timeout=120, every=0.02,
                   what=f"{activity_type} to start")
    await running.kill()
    successor = workers()
    await successor.start()
    return successor


async def attempts(handle: WorkflowHandle, activity_type: str) -> list[int]:
    """The attempt on which each finished activity of this type started, as history records it."""
    scheduled: dict[int, str] = {}
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if scheduled.get(started.scheduled_event_id) == activity_type:
                found.append(started.attempt)
    return found


def run() -> dict[str, Any]:
    return scripted_run(
        "a big workspace, released and restored",
        turn("fill", shell=FILL), turn("check", python=CHECK), turn("{{last_output}}"),
        approval={"tools": ["python"]}, sandbox={"idle_release_seconds": 1, "memory_mb": 1024},
        budget={"max_seconds": 600})


async def released(client: Client, workflow_id: str) -> bool:
    return (await tether.get_status(client, workflow_id)).sandbox == "released"


async def first_output(client: Client, workflow_id: str) -> str:
    [first] = [s for s in await tether.get_transcript(client, workflow_id) if s.step == 1]
    return first.tool_results[0].stdout.strip()


async def test_a_worker_killed_during_the_idle_snapshot_leaves_a_run_that_ends_with_its_workspace(
    temporal_client: Client, workers: Callable[[], WorkerProcess]
):
    first = workers()
    await first.start()
    handle = await tether.start_run(temporal_client, run(), task_queue=first.task_queue)
    await kill_while(handle, "snapshot_workspace", first, workers)

    await wait_for(lambda: released(temporal_client, handle.id), timeout=120, what="the idle release")
    await wait_for(lambda: not sandboxes_of(handle.id), timeout=60, what="the idle sandbox to go")
    await tether.approve(temporal_client, handle.id, "2-0")
    result = await handle.result()

    assert 2 in await attempts(handle, "snapshot_workspace")
    written = await first_output(temporal_client, handle.id)
    assert result.output is not None
    assert result.output.splitlines() == [written, "0o640 data/f1 []"]


async def test_a_worker_killed_during_the_restore_leaves_a_run_that_ends_with_its_workspace(
    temporal_client: Client, workers: Callable[[], WorkerProcess]
):
    first = workers()
    await first.start()
    handle = await tether.start_run(temporal_client, run(), task_queue=first.task_queue)
    await wait_for(lambda: released(temporal_client, handle.id), timeout=120, what="the idle release")
    await tether.approve(temporal_client, handle.id, "2-0")
    await kill_while(handle, "acquire_sandbox", first, workers)
    result = await handle.result()

    assert max(await attempts(handle, "acquire_sandbox")) >= 2
    written = await first_output(temporal_client, handle.id)
    assert result.output is not None
    assert result.output.splitlines() == [written, "0o640 data/f1 []"]
