"""Admission control: how many sandboxes one worker hosts at once.

Each worker admits at most `limit` live sandboxes of runs on its engine. An acquisition
beyond it is refused at once with `NoSandboxSlot`; the run then waits for a slot, durably,
in its workflow (`waiting_for_sandbox`), rather than failing or overloading the engine.

The count is this worker's containers on the engine (every state: a container being
removed still holds its memory), less the warm pool's unclaimed ones, which its own size
bounds, plus creations in flight, all under one lock so two acquisitions can't both take
the last slot.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from tether.sandbox.manager import LABEL_WORKER, SandboxManager

HOST_MEMORY_SHARE = 0.75
"""Of the host's memory, the share its sandboxes may have at their limits; the rest is the
worker's, the engine's and the system's."""


class NoSandboxSlot(RuntimeError):
    """The worker hosts as many sandboxes as it admits: the run waits for one to end."""


def host_memory_mb() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)


def default_limit(memory_mb: int, host_mb: int | None = None) -> int:
    """As many sandboxes of `memory_mb` as fit in `HOST_MEMORY_SHARE` of the host's memory."""
    host_mb = host_memory_mb() if host_mb is None else host_mb
    return max(1, int(host_mb * HOST_MEMORY_SHARE) // memory_mb)


class SandboxSlots:
    def __init__(self, sandboxes: SandboxManager, *, worker: str, limit: int,
                 unclaimed: Callable[[], int] = lambda: 0) -> None:
        self.sandboxes = sandboxes
        self.worker = worker
        self.limit = limit
        self.unclaimed = unclaimed
        """How many of the worker's containers are a warm pool's, claimed by no run yet."""
        self._creating = 0
        self._lock = asyncio.Lock()

    async def live(self) -> int:
        """Sandboxes of runs on this worker's engine now, and those being made."""
        containers = await asyncio.to_thread(self.sandboxes.managed, **{LABEL_WORKER: self.worker})
        return len(containers) - self.unclaimed() + self._creating

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Holds a slot while a sandbox is made; raises NoSandboxSlot when none is free. Once
        made, the container itself holds the slot until it is removed."""
        async with self._lock:
            live = await self.live()
            if live >= self.limit:
                raise NoSandboxSlot(
                    f"worker {self.worker} hosts {live} sandboxes, its limit "
                    f"(TETHER_MAX_SANDBOXES={self.limit}): the run waits for a slot")
            self._creating += 1
        try:
            yield
        finally:
            self._creating -= 1
