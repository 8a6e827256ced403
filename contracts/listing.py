"""A run as `tether list` shows it: one row of Temporal's visibility, with tether's columns."""

from __future__ import annotations

from datetime import datetime

from tether.contracts.messages import Strict


class RunListing(Strict):
    workflow_id: str
    run_id: str
    state: str
    """`TetherStatus` (`thinking`, `awaiting_approval`, `completed`, ...); for a run that
    closed without setting it (terminated, timed out), how Temporal closed it."""
    steps: int | None
    cost_usd: float | None
    model: str | None
    started_at: datetime | None
    closed_at: datetime | None
    task_queue: str
    fork_of: str | None = None
    """For a fork, the workflow id of the run it was forked from (`TetherForkOf`)."""
    parent_id: str | None = None
    """For a sub-agent, its parent's workflow id (Temporal's `ParentWorkflowId`)."""
