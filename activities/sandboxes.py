"""Acquire, release and reap the containers runs execute their tools in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from docker.models.containers import Container
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from tether.activities.artifacts import place_files
from tether.activities.snapshots import heartbeating, restore_snapshot
from tether.contracts import AcquireInput, ReapInput, ReapReport, ReleaseInput, SandboxHandle
from tether.contracts.activities import ACQUIRE_SANDBOX, REAP_SANDBOXES, RELEASE_SANDBOX
from tether.contracts.files import MAX_FILE_BYTES
from tether.egress.proxy import EgressProxy, EgressUnavailable, SecretRefused
from tether.sandbox.admission import NoSandboxSlot, SandboxSlots
from tether.sandbox.channel import ChannelClosed
from tether.sandbox.manager import (
    LABEL_CREATED,
    LABEL_WORKER,
    SandboxBroken,
    SandboxManager,
    labels_for,
    run_name,
)
from tether.sandbox.pool import WarmPool
from tether.store import ContentStore

log = logging.getLogger("tether.reaper")


class SandboxActivities:
    """Makes and removes this worker's sandboxes, and sweeps what runs left behind.

    `worker_id` names this host (its containers carry it, and the reaper judges only those);
    `host_queue` is where the run's tool calls must go to reach this engine; `blobs` holds
    the files runs are given.
    """

    def __init__(
        self, *, sandboxes: SandboxManager, client: Client, worker_id: str, host_queue: str,
        pool: WarmPool | None = None, ttl_seconds: float | None = None,
        blobs: ContentStore | None = None, host_wait_seconds: float | None = None,
        slots: SandboxSlots | None = None, egress: EgressProxy | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.max_file_bytes = max_file_bytes
        """The largest file a run may be given (the worker's TETHER_MAX_FILE_MB)."""
        self.egress = egress
        """The host's egress proxy, for sandboxes whose network allows hosts; None: none here."""
        self.slots = slots
        """Admission control: at most `slots.limit` live sandboxes on this worker."""
        self.blobs = blobs
        self.sandboxes = sandboxes
        self.client = client
        self.worker_id = worker_id
        self.host_queue = host_queue
        self.pool = pool
        self.ttl_seconds = ttl_seconds
        self.host_wait_seconds = host_wait_seconds

    @activity.defn(name=ACQUIRE_SANDBOX)
    async def acquire(self, input: AcquireInput) -> SandboxHandle:
        """Claims a container from this worker's warm pool when the run's spec fits it, or
        creates one for the run."""
        # A restore heartbeats from the start: its workflow gave it a heartbeat timeout.
        async with heartbeating("acquire") if input.snapshot else contextlib.nullcontext():
            return await self._acquire(input)

    async def _acquire(self, input: AcquireInput) -> SandboxHandle:
        # The run holds no sandbox when it asks for one: whatever of it this engine still has
        # is an earlier attempt's half-made container (its engine went away mid-create) or a
        # lost one on its way out. None of it may outlive the run.
        for leftover in await asyncio.to_thread(self.sandboxes.for_run, input.workflow_id):
            await self._remove(leftover.id)
        try:
            async with self.slots.slot() if self.slots else contextlib.nullcontext():
                container_id = await self._make(input)
        except NoSandboxSlot as full:
            # Not retried here: the run waits for a slot in its workflow, where the wait is
            # durable, shows in its status and counts against its time budget.
            raise ApplicationError(str(full), type="NoSandboxSlot", non_retryable=True) from None
        if input.snapshot:
            await self._restore(container_id, input.snapshot, input.spec.disk_mb)
        elif input.files:
            await self._place(container_id, input.files)
        started_at = await asyncio.to_thread(self.sandboxes.started_at, container_id)
        return SandboxHandle(container_id=container_id, task_queue=self.host_queue,
                             worker=self.worker_id, started_at=started_at,
                             host_wait_seconds=self.host_wait_seconds)

    async def _make(self, input: AcquireInput) -> str:
        """A container for the run: claimed from the warm pool when its spec fits, or created."""
        container_id = self.pool and await self.pool.acquire(input.spec, input.workflow_id, input.run_id)
        if container_id:
            return container_id
        labels = labels_for(input.workflow_id, input.run_id, self.worker_id)
        name = run_name(input.workflow_id)
        egress_dir = await self._open_egress(input, name)
        try:
            container = await asyncio.to_thread(
                self.sandboxes.create, input.spec, labels, name=name, egress_dir=egress_dir)
        except BaseException as error:
            if self.egress is not None:
                await self.egress.close(name)
            if isinstance(error, SandboxBroken):
                raise ApplicationError(str(error), type="SandboxBroken", non_retryable=True) from None
            raise
        if self.egress is not None and egress_dir is not None:
            self.egress.made(name, str(container.id))
        return str(container.id)

    async def _open_egress(self, input: AcquireInput, name: str) -> str | None:
        """The directory of the sandbox's egress socket, when its network allows hosts."""
        network = input.spec.network
        if network == "none":
            return None
        if self.egress is None:
            raise ApplicationError("this worker runs no egress proxy, so it can't make a sandbox whose"
                                   " network allows hosts", type="EgressUnavailable", non_retryable=True)
        try:
            return await self.egress.open(name, network)
        except SecretRefused as refused:
            # A variable this worker does not broker (or lacks): no retry could change that.
            raise ApplicationError(str(refused), type="InvalidInput", non_retryable=True) from None
        except EgressUnavailable as error:
            raise ApplicationError(str(error), type="EgressUnavailable", non_retryable=True) from None

    async def _remove(self, container_id: str) -> bool:
        """Removes the container, and closes its egress socket if it had one."""
        removed = await asyncio.to_thread(self.sandboxes.remove, container_id)
        if self.egress is not None:
            await self.egress.close(container_id)
        return removed

    async def _place(self, container_id: str, files: dict[str, str]) -> None:
        """Puts the run's files in before anyone sees the sandbox; one that can't have them is
        removed at once (a retry starts from a fresh one)."""
        try:
            if self.blobs is None:
                raise ApplicationError("this worker has no content store to take the run's files from",
                                       type="FilesRefused", non_retryable=True)
            await place_files(self.blobs, self.sandboxes, container_id, files, max_bytes=self.max_file_bytes)
        except BaseException:
            await self._remove(container_id)
            raise

    async def _restore(self, container_id: str, snapshot: str, disk_mb: int) -> None:
        """Recreates the run's workspace from its latest snapshot (which holds its files, as
        they were then) before anyone sees the sandbox; one that can't have it is removed."""
        try:
            if self.blobs is None:
                raise ApplicationError("this worker has no content store to restore the run's workspace from",
                                       type="SnapshotRefused", non_retryable=True)
            await restore_snapshot(self.blobs, self.sandboxes, container_id, snapshot, disk_mb=disk_mb)
        except BaseException:
            await self._remove(container_id)
            raise

    @activity.defn(name=RELEASE_SANDBOX)
    async def release(self, input: ReleaseInput) -> bool:
        return await self._remove(input.container_id)

    @activity.defn(name=REAP_SANDBOXES)
    async def reap(self, input: ReapInput) -> ReapReport:
        return await self.sweep(input.max_age_seconds)

    async def sweep(self, max_age_seconds: float | None = None) -> ReapReport:
        """One pass over this engine's sandboxes, removing those whose run is closed or
        unknown to Temporal, or older than a TTL, and warm-pool containers nobody claimed
        that a dead worker's pool left behind. Also run directly at worker start."""
        # Only this worker identity's containers: another tether (another Temporal server,
        # another test session) may share the engine, and its runs are unknown here. A
        # worker's id is stable across restarts, so its successor sweeps what it left.
        containers = await asyncio.to_thread(self.sandboxes.managed, **{LABEL_WORKER: self.worker_id})
        if max_age_seconds is None:
            max_age_seconds = self.ttl_seconds
        removed: list[str] = []
        for container in containers:
            if await self._is_orphan(container, max_age_seconds):
                await self._remove(container.id)
                removed.append(container.name)
        return ReapReport(examined=len(containers), removed=removed)

    async def sweep_every(self, seconds: float) -> None:
        """Sweeps this engine every `seconds` for as long as the host serves. Every host
        sweeps its own, so a closed run's container goes within one period on whichever host
        it is, even if no run ever starts there again."""
        while True:
            await asyncio.sleep(seconds)
            try:
                report = await self.sweep()
            except Exception as error:  # an engine or server away for a while: next time
                log.warning("sweep of %s's sandboxes failed: %s", self.worker_id, error)
                continue
            if report.removed:
                log.info("removed %d sandbox(es) of closed runs: %s", len(report.removed), report.removed)

    async def held(self) -> list[str]:
        """The names of this worker's containers on its engine."""
        containers = await asyncio.to_thread(self.sandboxes.managed, **{LABEL_WORKER: self.worker_id})
        return [c.name for c in containers]

    async def wait_until_moved_on(self, in_flight: Callable[[], int], seconds: float) -> bool:
        """While this host drains: waits until no tool call runs here and none of its
        sandboxes is left (runs remove theirs once they moved on; the sweep removes those of
        runs that closed). False if some are still here after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(Exception):  # the engine or server away: keep waiting
                await self.sweep()
            if in_flight() == 0 and not await self.held():
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    async def remove_all(self) -> list[str]:
        """Removes every container of this worker's: a host that leaves serves none of them."""
        containers = await asyncio.to_thread(self.sandboxes.managed, **{LABEL_WORKER: self.worker_id})
        for container in containers:
            await self._remove(container.id)
        return [c.name for c in containers]

    async def _is_orphan(self, container: Container, max_age_seconds: float | None) -> bool:
        if container.status in ("exited", "dead"):
            return True  # serves no one: a stopped sandbox is never started again
        created = container.labels.get(LABEL_CREATED, "")
        try:
            identity = await asyncio.to_thread(self.sandboxes.identity_of, container)
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
            return self.pool is None or not self.pool.made(container)
        try:
            description = await self.client.get_workflow_handle(identity.workflow_id).describe()
        except RPCError as error:
            return error.status == RPCStatusCode.NOT_FOUND
        return description.status is not None and description.status.name != "RUNNING"


def _older_than(since: str, max_age_seconds: float | None) -> bool:
    if max_age_seconds is None:
        return False
    try:
        started = datetime.fromisoformat(since)
    except ValueError:
        return False
    return time.time() - started.astimezone(UTC).timestamp() > max_age_seconds
