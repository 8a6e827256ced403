"""Acquire, release and reap the containers runs execute their tools in."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime

from docker.models.containers import Container
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import settings
from sandbox.channel import ChannelClosed
from sandbox.manager import (
    LABEL_CREATED,
    LABEL_WORKER,
    SandboxBroken,
    create_sandbox,
    identity_of,
    labels_for,
    list_sandboxes,
    remove_sandbox,
    run_name,
)
from sandbox.pool import running_pool
from workflows.types import SandboxSpec

log = logging.getLogger("tether.reaper")
TTL_ENV = "TETHER_SANDBOX_TTL_SECONDS"


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
    """Sandboxes that have served their run (or waited in a pool) longer than this go, whatever
    their run's state. None: TETHER_SANDBOX_TTL_SECONDS, or no limit when that is unset."""


class ReapReport(BaseModel):
    examined: int
    removed: list[str]


@activity.defn(name="acquire_sandbox")
async def acquire_sandbox(input: AcquireInput) -> SandboxHandle:
    """Claims a container from this worker's warm pool when the run's spec fits it, or
    creates one for the run."""
    worker = settings.worker_id()
    pool = running_pool(worker)
    container_id = pool and await pool.acquire(input.spec, input.workflow_id, input.run_id)
    if not container_id:
        labels = labels_for(input.workflow_id, input.run_id, worker)
        try:
            container = await asyncio.to_thread(
                create_sandbox, input.spec, labels, name=run_name(input.workflow_id))
        except SandboxBroken as error:
            raise ApplicationError(str(error), type="SandboxBroken", non_retryable=True) from None
        container_id = container.id
    return SandboxHandle(
        container_id=container_id,
        task_queue=settings.host_task_queue(activity.info().task_queue),
        worker=worker,
    )


@activity.defn(name="release_sandbox")
async def release_sandbox(input: ReleaseInput) -> bool:
    return await asyncio.to_thread(remove_sandbox, input.container_id)


class Reaper:
    """Removes sandboxes whose run is closed or unknown to Temporal, or older than a TTL, and
    warm-pool containers nobody claimed that a dead worker's pool left behind.

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
        # another test session) may share the engine, and its runs are unknown here. A
        # worker's id is stable across restarts, so its successor sweeps what it left.
        worker = settings.worker_id()
        containers = await asyncio.to_thread(list_sandboxes, **{LABEL_WORKER: worker})
        if max_age_seconds is None:
            max_age_seconds = ttl_from_env()
        removed: list[str] = []
        for container in containers:
            if await self._is_orphan(container, worker, max_age_seconds):
                await asyncio.to_thread(remove_sandbox, container.id)
                removed.append(container.name)
        return ReapReport(examined=len(containers), removed=removed)

    async def _is_orphan(self, container: Container, worker: str, max_age_seconds: float | None) -> bool:
        if container.status in ("exited", "dead"):
            return True  # serves no one: a stopped sandbox is never started again
        created = container.labels.get(LABEL_CREATED, "")
        try:
            identity = await asyncio.to_thread(identity_of, container)
        except (ChannelClosed, TimeoutError) as error:
            # A claimed pool container whose executor doesn't answer: its run can't be
            # known, so only the TTL may remove it.
            log.warning("can't tell which run %s serves: %s", container.name, error)
            return _older_than(created, max_age_seconds)
        # A run's sandbox is as old as its service to the run, not as its time in a pool.
        if _older_than(identity.since if identity else created, max_age_seconds):
            return True
        if identity is None:
            # Unclaimed: the live pool's stock, or what a dead worker's pool left.
            pool = running_pool(worker)
            return pool is None or not pool.made(container)
        try:
            description = await self.client.get_workflow_handle(identity.workflow_id).describe()
        except RPCError as error:
            return error.status == RPCStatusCode.NOT_FOUND
        return description.status is not None and description.status.name != "RUNNING"


def ttl_from_env() -> float | None:
    raw = os.environ.get(TTL_ENV, "").strip()
    return float(raw) if raw else None


def _older_than(since: str, max_age_seconds: float | None) -> bool:
    if max_age_seconds is None:
        return False
    try:
        started = datetime.fromisoformat(since)
    except ValueError:
        return False
    return time.time() - started.astimezone(UTC).timestamp() > max_age_seconds
