"""Idle release: a run that waits (for a person's approval) longer than
`sandbox.idle_release_seconds` while holding its sandbox snapshots the workspace and removes
the container; the next tool call restores the workspace in a new sandbox.

A sandbox is idle while every unfinished call of the step waits for a person: a call that
runs holds it. The budget's seconds keep counting, since the deadline is a timer of its own.
Processes a tool left running in the background do not survive a release.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import workflow
from tether.workflows.sandbox_lease import SandboxLease

IDLE_RELEASE_PATCH = "idle-release-sandbox"


class IdleRelease:
    """Watches a run's waits; one watcher per run, however many calls wait at once."""

    def __init__(self, lease: SandboxLease) -> None:
        self.lease = lease
        self.waiting = 0
        """Calls of the step waiting for a person."""
        self.active = 0
        """Calls of the step not finished, waiting or running."""
        self.watcher: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def waiting_for_person(self) -> AsyncIterator[None]:
        """Around a wait for a person: past `idle_release_seconds` of it, with nothing else
        running, the sandbox is released. Older histories never release (a patch)."""
        spec = self.lease.spec
        if spec.snapshots == "off" or not workflow.patched(IDLE_RELEASE_PATCH):
            yield
            return
        self.waiting += 1
        if self.watcher is None:
            self.watcher = asyncio.ensure_future(self._watch(timedelta(seconds=spec.idle_release_seconds)))
        try:
            yield
        finally:
            self.waiting -= 1

    @contextlib.asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Around each call of a step: a running call keeps the sandbox busy."""
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    def _idle(self) -> bool:
        lease = self.lease
        return (self.waiting > 0 and self.waiting >= self.active and lease.state.sandbox is not None
                and lease.acquiring is None)

    async def _watch(self, after: timedelta) -> None:
        """Releases the sandbox once it has been idle for `after` on end; gone when no call
        waits any more."""
        try:
            while self.waiting:
                if not self._idle():
                    await workflow.wait_condition(lambda: self._idle() or not self.waiting)
                    continue
                try:
                    await workflow.wait_condition(lambda: not self._idle(), timeout=after,
                                                  timeout_summary="idle release")
                except TimeoutError:
                    sandbox = self.lease.state.sandbox
                    if sandbox is not None:
                        self.lease.releasing = asyncio.ensure_future(
                            self.lease.release_idle(sandbox))
                        try:
                            await self.lease.releasing
                        finally:
                            self.lease.releasing = None
                    return
        finally:
            self.watcher = None
