"""TETHER_ROLE splits a worker: `workflows` runs workflows and model calls and needs no Docker
engine; `sandbox` runs sandboxes and the tool calls in them and no workflow or model call.
Two worker processes, one of each, serve a run together."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from tether import client as tether
from tether.settings import TetherSettings

from tests.helpers import sandboxes
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def who_ran(handle: WorkflowHandle) -> dict[str, set[str]]:
    """For each activity type, and for workflow tasks, the pids of the workers that ran them
    (a worker's identity is `<pid>@<host>`)."""
    ran: dict[str, set[str]] = {}
    scheduled: dict[int, str] = {}
    async for event in handle.fetch_history_events():
        kind = event.WhichOneof("attributes")
        if kind == "activity_task_scheduled_event_attributes":
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif kind == "activity_task_started_event_attributes":
            started = event.activity_task_started_event_attributes
            ran.setdefault(scheduled[started.scheduled_event_id], set()).add(started.identity.split("@")[0])
        elif kind == "workflow_task_started_event_attributes":
            ran.setdefault("workflow", set()).add(
                event.workflow_task_started_event_attributes.identity.split("@")[0])
    return ran


async def pollers(client: Client, queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind))
    return {p.identity.split("@")[0] for p in described.pollers}


async def test_a_workflows_host_and_a_sandbox_host_serve_a_run_together(
    temporal_client: Client, docker_engine, tmp_path: Path,
):
    queue = f"roles-{uuid.uuid4().hex[:8]}"
    # No engine at all where workflows run: the role must not need one.
    brains = WorkerProcess(temporal_client, task_queue=queue, worker_id=f"wf-{uuid.uuid4().hex[:6]}",
                           log_file=tmp_path / "workflows.log",
                           env={"TETHER_ROLE": "workflows", "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    hands = WorkerProcess(temporal_client, task_queue=queue, worker_id=f"sb-{uuid.uuid4().hex[:6]}",
                          log_file=tmp_path / "sandbox.log", env={"TETHER_ROLE": "sandbox"})
    await brains.start()
    await hands.start()
    try:
        assert brains.process and hands.process
        brain, hand = str(brains.process.pid), str(hands.process.pid)
        handle = await tether.start_run(temporal_client, scripted_run(
            "split", turn(python="print(6 * 7)"), turn("{{last_output}}")), task_queue=queue)
        result = await asyncio.wait_for(handle.result(), 90)
        assert result.status == "completed" and result.output.strip() == "42"

        ran = await who_ran(handle)
        assert ran["workflow"] == {brain}
        assert ran["model_call"] == {brain}
        assert ran["acquire_sandbox"] == ran["tool_call"] == ran["release_sandbox"] == {hand}
        # The workflows host polls no sandbox queue and takes no activity a sandbox needs;
        # the sandbox host polls for no workflow.
        assert await pollers(temporal_client, brains.host_queue,
                             TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) == set()
        assert hand not in await pollers(temporal_client, queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
        assert sandboxes().managed(**{"tether.worker": brains.worker_id}) == []
    finally:
        await brains.stop()
        await hands.stop()
    assert sandboxes().managed(**{"tether.worker": hands.worker_id}) == []


def test_an_unknown_role_stops_the_worker_naming_the_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_ROLE", "tools")
    with pytest.raises(ValidationError, match=r"role[\s\S]*'both', 'workflows' or 'sandbox'"):
        TetherSettings()
