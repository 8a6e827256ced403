"""The gate a sandbox host closes when it drains: tool calls already running finish, new ones
are refused as `SandboxGone`, so their run moves to a new sandbox on another host at once
instead of waiting for this one to disappear.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)
from tether.contracts.activities import MCP_CALL, TOOL_CALL

GATED = frozenset({TOOL_CALL, MCP_CALL})
"""Calls into a sandbox. Releases still pass: they are how a run that moved on removes its
old sandbox from this host."""


class DrainGate(Interceptor):
    """Counts the tool calls running on this host and, once `close`d, refuses new ones."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.draining = False
        self.in_flight = 0

    def close(self) -> None:
        self.draining = True

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Counts a tool call as in flight while it runs: the drain waits for it."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Gate(next, self)


class _Gate(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, gate: DrainGate) -> None:
        super().__init__(next)
        self.gate = gate

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        if activity.info().activity_type not in GATED:
            return await super().execute_activity(input)
        if self.gate.draining:
            # SandboxGone is what a run already handles: it declares the sandbox lost,
            # removes it through this host (still serving releases), and goes on elsewhere.
            raise ApplicationError(
                f"worker {self.gate.worker_id} is shutting down and takes no new tool calls",
                type="SandboxGone", non_retryable=True)
        with self.gate.counting():
            return await super().execute_activity(input)
