"""The run's `max_seconds` as one durable timer that steps race.

A Temporal timer lives in the event history, so the deadline holds across worker crashes
and restarts. One timer per workflow execution, rather than one per step, keeps the history
flat; `extend_budget` re-arms it, and continue-as-new arms a fresh one for the time left.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow


class Deadline:
    def __init__(self) -> None:
        self.passed = False
        self.began = False
        """Whether the run's code (its `run`, or an update's handler) has begun. The timer
        armed in `__init__` waits for it, so that its command follows theirs however the SDK
        schedules the first activation: replaying a history with a patch marker in its first
        workflow task, the SDK makes the workflow object (and this timer) before the run."""
        self._timer: asyncio.Task[None] | None = None

    def arm(self, seconds_left: float | None) -> None:
        """Starts the timer for `seconds_left` (None: no deadline), replacing any earlier one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.passed = seconds_left is not None and seconds_left <= 0
        if seconds_left is not None and not self.passed:
            self._timer = asyncio.ensure_future(self._expire(seconds_left))

    async def _expire(self, seconds: float) -> None:
        if not self.began:
            await workflow.wait_condition(lambda: self.began)
        await workflow.sleep(seconds, summary="deadline (max_seconds)")
        self.passed = True
