"""The run's sandbox: acquired at its first tool call, shared by the calls that run at once,
carried across continue-as-new in `RunState.sandbox`, and released when the run ends,
however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from tether.contracts import AcquireInput, ReleaseInput, RunPhase, SandboxHandle, SandboxSpec
from tether.contracts.activities import ACQUIRE_SANDBOX, RELEASE_SANDBOX, SNAPSHOT_WORKSPACE
from tether.contracts.snapshots import SnapshotInput, SnapshotOutput
from tether.workflows import telemetry
from tether.workflows.failures import no_slot, root_message, stop_if_cancelled
from tether.workflows.options import ActivityOptions
from tether.workflows.state import RunState

FIRST_SLOT_WAIT = timedelta(seconds=1)
MAX_SLOT_WAIT = timedelta(seconds=5)
"""How often, at most, a run waiting for a slot asks again."""
GONE_HOST_WAIT = timedelta(seconds=5)
"""How long the removal of a sandbox lost with its host waits for that host."""
EVERY_STEP_PATCH = "snapshot-every-step"


class SandboxLease:
    def __init__(self, state: RunState, spec: SandboxSpec, options: ActivityOptions, *,
                 on_change: Callable[[], None], files: dict[str, str] | None = None) -> None:
        self.state = state
        self.spec = spec
        self.files = files or {}
        """The run's files: every sandbox it acquires has them in /workspace before first use."""
        self.options = options
        self.on_change = on_change
        self.acquiring: asyncio.Task[SandboxHandle] | None = None
        self.waiting_for_slot = False
        """True while the acquisition sleeps between refusals for want of a slot."""
        self.removing: list[asyncio.Task[None]] = []
        """Removals of lost sandboxes, started when they were lost; the run's end awaits them."""
        self.releasing: asyncio.Task[None] | None = None
        """An idle release in flight (`workflows/idle_release.py`): the next call waits for it."""

    async def get(self) -> SandboxHandle:
        """The run's sandbox, created by the first caller; concurrent callers share it."""
        if self.releasing is not None:
            await asyncio.shield(self.releasing)
        if self.state.sandbox is not None:
            return self.state.sandbox
        if self.acquiring is None:
            self.acquiring = asyncio.ensure_future(self._acquire())
        try:
            # Shielded: a step interrupted while the container is being made must still
            # learn its id, or nothing would remove it. `release` awaits it.
            handle = await asyncio.shield(self.acquiring)
        except ActivityError as error:
            # The model can do nothing about a sandbox that can't be made (a missing image,
            # settings the engine refuses): the run fails, saying why.
            raise ApplicationError(
                f"the run's sandbox could not be created: {root_message(error)}",
                type="SandboxUnavailable", non_retryable=True,
            ) from None
        return self._adopt(handle)

    async def _acquire(self) -> SandboxHandle:
        """Acquires a sandbox; while every worker that takes the request is full, waits for
        a slot, durably and visibly (`waiting_for_sandbox`), retrying with backoff. The
        wait counts against the run's time budget like any other."""
        info = workflow.info()
        wait: timedelta = FIRST_SLOT_WAIT
        before: RunPhase | None = None
        try:
            while True:
                try:
                    return await workflow.execute_activity(
                        ACQUIRE_SANDBOX,
                        AcquireInput(workflow_id=info.workflow_id, run_id=info.first_execution_run_id,
                                     spec=self.spec, files=self.files, snapshot=self.state.snapshot),
                        result_type=SandboxHandle,
                        start_to_close_timeout=self.options.sandbox_timeout,
                        # A restore streams the workspace in, heartbeating: a worker killed
                        # in it is noticed in seconds. Runs without a snapshot as before.
                        heartbeat_timeout=self.options.tool_heartbeat if self.state.snapshot else None,
                        retry_policy=self.options.sandbox_retry,
                        summary="acquire sandbox",
                    )
                except ActivityError as error:
                    if not no_slot(error) or not workflow.patched("wait-for-sandbox-slot"):
                        raise
                if before is None:
                    before, self.state.phase = self.state.phase, "waiting_for_sandbox"
                    self.on_change()
                self.waiting_for_slot = True
                try:
                    await workflow.sleep(wait, summary="wait for a sandbox slot")
                finally:
                    self.waiting_for_slot = False
                wait = min(wait * 2, MAX_SLOT_WAIT)
        finally:
            if before is not None and self.state.phase == "waiting_for_sandbox":
                self.state.phase = before
                self.on_change()

    def lose(self, sandbox: SandboxHandle, *, host_answered: bool = True) -> None:
        """Forgets a sandbox whose worker or container is gone: the next call gets a new one,
        and the lost one is removed at once (a container restarted by its engine, or one
        whose stream broke, must not stay behind). Calls that lose the same sandbox at once
        replace it once, not once each."""
        if self.state.sandbox != sandbox:
            return
        self.state.sandbox = None
        self.on_change()
        telemetry.sandbox_lost()
        if workflow.patched("remove-lost-sandbox"):
            # A host that did not answer for its whole host wait is most likely gone: its
            # removal is given a short wait, not another whole one, so the run's end is not
            # held up; a host that comes back sweeps its engine at start.
            self.removing.append(asyncio.ensure_future(self._remove(
                sandbox, summary="remove lost sandbox",
                host_wait=None if host_answered else GONE_HOST_WAIT)))

    async def settle(self) -> SandboxHandle | None:
        """The run's sandbox once an acquisition in flight has ended; None if it has none."""
        if self.acquiring is not None:
            if self.waiting_for_slot:
                self.acquiring.cancel()  # between attempts nothing is being made: stop waiting
            try:
                self._adopt(await self.acquiring)
            except ActivityError:
                self.acquiring = None  # nothing was made
            except asyncio.CancelledError:
                if not self.acquiring.cancelled():
                    raise
                self.acquiring = None
        return self.state.sandbox

    async def snapshot(self, sandbox: SandboxHandle, *, summary: str) -> SnapshotOutput:
        """Snapshots the sandbox's workspace into the content store, on the worker that holds
        it; the digest becomes the run's latest snapshot."""
        taken = await workflow.execute_activity(
            SNAPSHOT_WORKSPACE,
            SnapshotInput(workflow_id=workflow.info().workflow_id, container_id=sandbox.container_id,
                          started_at=sandbox.started_at, disk_mb=self.spec.disk_mb),
            result_type=SnapshotOutput,
            task_queue=sandbox.task_queue,
            start_to_close_timeout=self.options.collect_timeout,
            schedule_to_start_timeout=self.options.host_wait(sandbox.host_wait_seconds),
            heartbeat_timeout=self.options.tool_heartbeat,
            retry_policy=self.options.collect_retry,
            summary=summary,
        )
        self.state.snapshot = taken.manifest
        return taken

    async def after_step(self, step: int) -> str | None:
        """With `snapshots: every_step`, the workspace's snapshot after a step's calls (what a
        fork at that step restores); None otherwise, or when it failed (saying why)."""
        if self.spec.snapshots != "every_step" or not workflow.patched(EVERY_STEP_PATCH):
            return None
        await self.settle()
        sandbox = self.state.sandbox
        if sandbox is None:
            return self.state.snapshot  # released or never made: the workspace is as last taken
        try:
            return (await self.snapshot(sandbox, summary=f"snapshot after step {step}")).manifest
        except ActivityError as error:
            stop_if_cancelled(error)
            self.state.last_error = f"no snapshot after step {step}: {root_message(error)}"
            return None

    async def release_idle(self, sandbox: SandboxHandle) -> None:
        """Snapshots an idle sandbox and removes it: the next call restores the workspace in
        a new one. A snapshot that fails keeps the sandbox, saying why."""
        try:
            await self.snapshot(sandbox, summary="snapshot idle workspace")
        except ActivityError as error:
            self.state.last_error = f"the idle sandbox was kept: its snapshot failed: {root_message(error)}"
            self.on_change()
            return
        if self.state.sandbox != sandbox:
            return  # lost while its snapshot was taken: its removal is under way
        self.state.sandbox, self.state.sandbox_released = None, True
        self.on_change()
        await self._remove(sandbox, summary="release idle sandbox")

    async def release(self) -> None:
        """Removes the run's sandbox, and waits for lost ones being removed."""
        if self.releasing is not None:
            await asyncio.shield(self.releasing)
        await self.settle()
        sandbox, self.state.sandbox = self.state.sandbox, None
        if sandbox is not None:
            await self._remove(sandbox)
        await self.removals_done()

    async def removals_done(self) -> None:
        """Waits for the lost sandboxes' removals, and an idle release in flight (a denied
        call's step ends without waiting for it): before the run ends or continues as new."""
        if self.releasing is not None:
            await asyncio.shield(self.releasing)
        if self.removing:
            await asyncio.gather(*self.removing)
            self.removing.clear()

    async def _remove(self, sandbox: SandboxHandle, summary: str = "release sandbox",
                      host_wait: timedelta | None = None) -> None:
        try:
            await workflow.execute_activity(
                RELEASE_SANDBOX, ReleaseInput(container_id=sandbox.container_id),
                result_type=bool,
                task_queue=sandbox.task_queue,
                start_to_close_timeout=self.options.release_timeout,
                schedule_to_start_timeout=host_wait or self.options.host_wait(sandbox.host_wait_seconds),
                retry_policy=self.options.sandbox_retry,
                summary=summary,
            )
        except ActivityError as error:
            # Its worker is gone: the reaper on that host removes the container.
            self.state.last_error = f"sandbox release failed: {root_message(error)}"

    def _adopt(self, handle: SandboxHandle) -> SandboxHandle:
        self.acquiring = None
        if self.state.sandbox is None:
            self.state.sandbox, self.state.sandbox_released = handle, False
            self.on_change()
        return self.state.sandbox
