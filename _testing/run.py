"""A run started in a test environment: its result, and the calls that steer it."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, FailureError
from tether import client as tether_client
from tether.contracts import AgentRunResult, PendingApproval, RunStatus

ENDED = ("completed", "budget_exhausted", "cancelled", "failed")


class RunFailed(Exception):
    """A run that failed instead of returning a result, with the run's own one-line reason.
    `kind` is the failure's type (`InvalidInput`, `UnknownTool`, `SandboxUnavailable`, ...)."""

    def __init__(self, message: str, *, kind: str | None = None, workflow_id: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.workflow_id = workflow_id

    @classmethod
    def of(cls, failure: WorkflowFailureError, workflow_id: str) -> RunFailed:
        cause: BaseException = failure.cause
        while cause.__cause__ is not None:
            cause = cause.__cause__
        outer = failure.cause
        # A FailureError's str() starts with its type; the message is the run's reason.
        message = cause.message if isinstance(cause, FailureError) else str(cause)
        return cls(message or type(cause).__name__, workflow_id=workflow_id,
                   kind=outer.type if isinstance(outer, ApplicationError) else type(outer).__name__)


class RunHandle:
    """One run of the environment's. `handle` is its Temporal handle, for anything else."""

    def __init__(self, client: Client, handle: WorkflowHandle[Any, AgentRunResult],
                 worker: asyncio.Task[None]) -> None:
        self.client = client
        self.handle = handle
        self._worker = worker

    @property
    def id(self) -> str:
        return self.handle.id

    async def result(self) -> AgentRunResult:
        """The run's result; `RunFailed` if the run failed. Should the environment's worker
        stop meanwhile, its error is raised rather than a wait that never ends."""
        waiting = asyncio.ensure_future(self.handle.result())
        await asyncio.wait({waiting, self._worker}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.cancel()
            self._worker.result()
            raise RuntimeError("the test environment's worker stopped while the run was going on")
        try:
            return waiting.result()
        except WorkflowFailureError as failure:
            raise RunFailed.of(failure, self.id) from failure

    async def status(self) -> RunStatus:
        return await tether_client.get_status(self.client, self.id)

    async def waiting_call(self, *, timeout: float = 30.0) -> PendingApproval:
        """The first call waiting for a person's approval, once there is one. Raises
        `TimeoutError` if none waits within `timeout`, or at once if the run ended."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.status()
            if status.pending_approvals:
                return status.pending_approvals[0]
            if status.state in ENDED:
                raise TimeoutError(f"run {self.id} ended ({status.state}) with no call waiting for approval")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no call of run {self.id} waited for approval within {timeout:g} s "
                                   f"(it is {status.state})")
            await asyncio.sleep(0.05)

    async def approve(self, call_id: str, *, reason: str | None = None) -> str:
        return await tether_client.approve(self.client, self.id, call_id, reason=reason)

    async def deny(self, call_id: str, *, reason: str | None = None) -> str:
        return await tether_client.approve(self.client, self.id, call_id, approved=False, reason=reason)

    async def send_message(self, text: str) -> str:
        """A person's message: the model reads it at its next step."""
        return await tether_client.send_message(self.client, self.id, text)

    async def cancel(self, reason: str | None = None) -> str:
        return await tether_client.cancel(self.client, self.id, reason)
