"""The run's sandbox: acquired at its first tool call, shared by the calls that run at once,
carried across continue-as-new in `RunState.sandbox`, and released when the run ends,
however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from tether.contracts import AcquireInput, ReleaseInput, SandboxHandle, SandboxSpec
from tether.contracts.activities import ACQUIRE_SANDBOX, RELEASE_SANDBOX
from tether.workflows import telemetry
from tether.workflows.failures import root_message
from tether.workflows.options import ActivityOptions
from tether.workflows.state import RunState


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
        self.removing: list[asyncio.Task[None]] = []
        """Removals of lost sandboxes, started when they were lost; the run's end awaits them."""

    async def get(self) -> SandboxHandle:
        """The run's sandbox, created by the first caller; concurrent callers share it."""
        if self.state.sandbox is not None:
            return self.state.sandbox
        if self.acquiring is None:
            info = workflow.info()
            self.acquiring = asyncio.ensure_future(workflow.execute_activity(
                ACQUIRE_SANDBOX,
                AcquireInput(workflow_id=info.workflow_id, run_id=info.first_execution_run_id,
                             spec=self.spec, files=self.files),
                result_type=SandboxHandle,
                start_to_close_timeout=self.options.sandbox_timeout,
                retry_policy=self.options.sandbox_retry,
                summary="acquire sandbox",
            ))
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

    def lose(self, sandbox: SandboxHandle) -> None:
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
            self.removing.append(asyncio.ensure_future(
                self._remove(sandbox, summary="remove lost sandbox")))

    async def settle(self) -> SandboxHandle | None:
        """The run's sandbox once an acquisition in flight has ended; None if it has none."""
        if self.acquiring is not None:
            try:
                self._adopt(await self.acquiring)
            except ActivityError:
                self.acquiring = None  # nothing was made
        return self.state.sandbox

    async def release(self) -> None:
        """Removes the run's sandbox, and waits for lost ones being removed."""
        await self.settle()
        sandbox, self.state.sandbox = self.state.sandbox, None
        if sandbox is not None:
            await self._remove(sandbox)
        await self.removals_done()

    async def removals_done(self) -> None:
        """Waits for the lost sandboxes' removals: before the run ends or continues as new."""
        if self.removing:
            await asyncio.gather(*self.removing)
            self.removing.clear()

    async def _remove(self, sandbox: SandboxHandle, summary: str = "release sandbox") -> None:
        try:
            await workflow.execute_activity(
                RELEASE_SANDBOX, ReleaseInput(container_id=sandbox.container_id),
                result_type=bool,
                task_queue=sandbox.task_queue,
                start_to_close_timeout=self.options.release_timeout,
                schedule_to_start_timeout=self.options.host_wait(sandbox.host_wait_seconds),
                retry_policy=self.options.sandbox_retry,
                summary=summary,
            )
        except ActivityError as error:
            # Its worker is gone: the reaper on that host removes the container.
            self.state.last_error = f"sandbox release failed: {root_message(error)}"

    def _adopt(self, handle: SandboxHandle) -> SandboxHandle:
        self.acquiring = None
        if self.state.sandbox is None:
            self.state.sandbox = handle
            self.on_change()
        return self.state.sandbox
