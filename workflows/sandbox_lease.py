"""The run's sandbox: acquired at its first tool call, shared by the calls that run at once,
carried across continue-as-new in `RunState.sandbox`, and released when the run ends,
however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.sandboxes import (
        AcquireInput,
        ReleaseInput,
        SandboxHandle,
        acquire_sandbox,
        release_sandbox,
    )
    from workflows.failures import root_message
    from workflows.state import RunState, SandboxRef
    from workflows.types import SandboxSpec

SANDBOX_RETRY = RetryPolicy(maximum_attempts=3, non_retryable_error_types=["SandboxBroken"])
# How long a call may wait for the worker that holds the sandbox before the run concludes
# that worker is gone.
HOST_WORKER_WAIT = timedelta(seconds=60)


class SandboxLease:
    def __init__(self, state: RunState, spec: SandboxSpec, *, on_change: Callable[[], None]) -> None:
        self.state = state
        self.spec = spec
        self.on_change = on_change
        self.acquiring: asyncio.Task[SandboxHandle] | None = None

    async def get(self) -> SandboxRef:
        """The run's sandbox, created by the first caller; concurrent callers share it."""
        if self.state.sandbox is not None:
            return self.state.sandbox
        if self.acquiring is None:
            info = workflow.info()
            self.acquiring = asyncio.ensure_future(workflow.execute_activity(
                acquire_sandbox,
                AcquireInput(workflow_id=info.workflow_id, run_id=info.first_execution_run_id,
                             spec=self.spec),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=SANDBOX_RETRY,
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

    def lose(self, sandbox: SandboxRef) -> None:
        """Forgets a sandbox whose worker or container is gone: the next call gets a new one.
        Calls that lose the same sandbox at once replace it once, not once each."""
        if self.state.sandbox == sandbox:
            self.state.sandbox = None
            self.on_change()

    async def release(self) -> None:
        if self.acquiring is not None:
            try:
                self._adopt(await self.acquiring)
            except ActivityError:
                self.acquiring = None  # nothing was made
        sandbox, self.state.sandbox = self.state.sandbox, None
        if sandbox is None:
            return
        try:
            await workflow.execute_activity(
                release_sandbox, ReleaseInput(container_id=sandbox.container_id),
                task_queue=sandbox.task_queue,
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_start_timeout=HOST_WORKER_WAIT,
                retry_policy=SANDBOX_RETRY,
                summary="release sandbox",
            )
        except ActivityError as error:
            # Its worker is gone: the reaper on that host removes the container.
            self.state.last_error = f"sandbox release failed: {root_message(error)}"

    def _adopt(self, handle: SandboxHandle) -> SandboxRef:
        self.acquiring = None
        if self.state.sandbox is None:
            self.state.sandbox = SandboxRef(**handle.model_dump())
            self.on_change()
        return self.state.sandbox
