"""Acquire, release and reap the containers runs execute their tools in."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import settings
from sandbox.manager import (
    LABEL_CREATED,
    LABEL_WORKER,
    LABEL_WORKFLOW,
    SandboxBroken,
    create_sandbox,
    labels_for,
    list_sandboxes,
    remove_sandbox,
)
from workflows.types import SandboxSpec


class AcquireInput(BaseModel):
    workflow_id: str
    run_id: str
    spec: SandboxSpec


class SandboxHandle(BaseModel):
    container_id: str
    task_queue: str
    """The queue of the worker whose engine holds the container: tool calls go there."""
    worker: str


class ReleaseInput(BaseModel):
    container_id: str


class ReapInput(BaseModel):
    max_age_seconds: float | None = None


class ReapReport(BaseModel):
    examined: int
    removed: list[str]


@activity.defn(name="acquire_sandbox")
async def acquire_sandbox(input: AcquireInput) -> SandboxHandle:
    worker = settings.worker_id()
    labels = labels_for(input.workflow_id, input.run_id, worker)
    try:
        container = await asyncio.to_thread(create_sandbox, input.spec, labels)
    except SandboxBroken as error:
        raise ApplicationError(str(error), type="SandboxBroken", non_retryable=True) from None
    return SandboxHandle(
        container_id=container.id,
        task_queue=settings.host_task_queue(activity.info().task_queue),
        worker=worker,
    )


@activity.defn(name="release_sandbox")
async def release_sandbox(input: ReleaseInput) -> bool:
    return await asyncio.to_thread(remove_sandbox, input.container_id)


class Reaper:
    """Removes sandboxes whose run is closed or unknown to Temporal, or older than a TTL.

    Holds the Temporal client the activity needs to look runs up.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name="reap_sandboxes")
    async def reap(self, input: ReapInput) -> ReapReport:
        return await self.sweep(input.max_age_seconds)

    async def sweep(self, max_age_seconds: float | None = None) -> ReapReport:
        """One pass over this engine's sandboxes; also run directly at worker start."""
        # Only this worker identity's containers: another tether (another Temporal server,
        # another test session) may share the engine, and its runs are unknown here.
        containers = await asyncio.to_thread(
            list_sandboxes, **{LABEL_WORKER: settings.worker_id()})
        removed: list[str] = []
        for container in containers:
            workflow_id = container.labels.get(LABEL_WORKFLOW, "")
            if await self._is_orphan(workflow_id, container.labels, max_age_seconds):
                await asyncio.to_thread(remove_sandbox, container.id)
                removed.append(container.name)
        return ReapReport(examined=len(containers), removed=removed)

    async def _is_orphan(
        self, workflow_id: str, labels: dict[str, str], max_age_seconds: float | None
    ) -> bool:
        if max_age_seconds is not None and _age_seconds(labels) > max_age_seconds:
            return True
        if not workflow_id:
            return False
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            return error.status == RPCStatusCode.NOT_FOUND
        return description.status is not None and description.status.name != "RUNNING"


def _age_seconds(labels: dict[str, str]) -> float:
    try:
        created = datetime.fromisoformat(labels[LABEL_CREATED])
    except (KeyError, ValueError):
        return 0.0
    return time.time() - created.astimezone(UTC).timestamp()
