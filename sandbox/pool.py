"""The warm pool: ready, hardened, unclaimed containers, so a run's first tool call doesn't
wait for a container to be created and started.

One pool per worker, of the default `SandboxSpec`; a run that asks for other container
settings gets a container created for it. The size comes from `TETHER_POOL_SIZE` (default
0: off, because Docker can't label a container for a run after creating it, and tether's
contract is that a run's containers carry its labels; see docs/sandbox.md). A background task
refills the pool after every take; `drain`, at shutdown, removes what nobody claimed. A
container leaves the pool once, claimed by one run (`SandboxManager.claim`), and never comes back:
pool containers are never reused across runs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque

from docker.models.containers import Container
from tether.contracts import SandboxSpec
from tether.sandbox.manager import (
    LABEL_CREATED,
    LABEL_MANAGED,
    LABEL_POOL,
    LABEL_WORKER,
    SandboxClaimed,
    SandboxManager,
    now_label,
)

RETRY_AFTER_S = 10.0
# Settings of each call or of the run's lifetime, not of the container: a run that changes
# only these still fits.
PER_CALL_FIELDS = {"tool_timeout_seconds", "output_limit_bytes", "snapshots", "idle_release_seconds"}

log = logging.getLogger("tether.pool")


class WarmPool:
    def __init__(self, sandboxes: SandboxManager, *, worker: str, size: int,
                 spec: SandboxSpec | None = None) -> None:
        self.sandboxes = sandboxes
        self.worker = worker
        self.size = size
        self.spec = spec or SandboxSpec()
        self.instance = f"{worker}/{uuid.uuid4().hex[:8]}"
        """The `tether.pool` label of this pool's containers; a new one per process, so the
        reaper can tell a live pool's containers from those a dead worker left."""
        self._idle: deque[str] = deque()
        self._wanted = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._refiller: asyncio.Task[None] | None = None

    def labels(self) -> dict[str, str]:
        """No run labels: nobody knows the run yet, and Docker can't add them later."""
        return {LABEL_MANAGED: "1", LABEL_WORKER: self.worker, LABEL_POOL: self.instance,
                LABEL_CREATED: now_label()}

    def start(self) -> None:
        self._refiller = asyncio.create_task(self._refill(), name=f"warm pool {self.instance}")

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def filled(self) -> None:
        """Returns once the pool holds `size` ready containers."""
        await self._full.wait()

    def fits(self, spec: SandboxSpec) -> bool:
        return (spec.model_dump(exclude=PER_CALL_FIELDS)
                == self.spec.model_dump(exclude=PER_CALL_FIELDS))

    def made(self, container: Container) -> bool:
        """True for every container this pool created, claimed or not."""
        return container.labels.get(LABEL_POOL) == self.instance

    async def acquire(self, spec: SandboxSpec, workflow_id: str, run_id: str) -> str | None:
        """A ready container claimed for the run, or None when none fits: create one then."""
        if not self.fits(spec):
            return None
        while self._idle:
            container_id = self._idle.popleft()
            self._full.clear()
            self._wanted.set()
            try:
                await asyncio.to_thread(self.sandboxes.claim, container_id, workflow_id, run_id)
                return container_id
            except SandboxClaimed as error:  # another run's: neither ours to hand out nor to remove
                log.warning("pool container %s is taken: %s", container_id[:12], error)
            except Exception as error:
                # Gone, restarted, unresponsive, or anything else: it isn't handed out, and
                # it isn't left behind either (an unclaimed container the pool lost track of
                # would otherwise wait for the TTL).
                log.warning("discarding pool container %s: %s", container_id[:12], error)
                await asyncio.to_thread(self.sandboxes.remove, container_id)
        return None

    async def drain(self) -> None:
        """Stops refilling and removes the unclaimed containers. Claimed ones belong to their
        runs: they outlive the worker, and their runs' ends (or the reaper) remove them."""
        self._closing = True
        self._wanted.set()
        if self._refiller is not None:
            await self._refiller  # lets a create in flight finish, so nothing leaks
        leftovers, self._idle = list(self._idle), deque()
        await asyncio.gather(*(asyncio.to_thread(self.sandboxes.remove, c) for c in leftovers))

    async def _refill(self) -> None:
        while not self._closing:
            if len(self._idle) >= self.size:
                self._full.set()
                self._wanted.clear()
                await self._wanted.wait()
                continue
            try:
                container = await asyncio.to_thread(
                    self.sandboxes.create, self.spec, self.labels(),
                    name=f"tether-pool-{uuid.uuid4().hex[:12]}")
            except Exception as error:
                # The pool only saves time: a failure here must not stop the worker. Runs
                # create their own containers meanwhile, and report any real problem.
                log.warning("could not refill the warm pool: %s", error)
                self._wanted.clear()
                try:
                    await asyncio.wait_for(self._wanted.wait(), RETRY_AFTER_S)
                except TimeoutError:
                    pass
                continue
            if self._closing:
                await asyncio.to_thread(self.sandboxes.remove, container.id)
            else:
                self._idle.append(container.id)
