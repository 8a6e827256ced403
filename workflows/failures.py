"""How the workflow reads an activity's failure: its root cause, a cancellation, a lost sandbox."""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout


def root_message(error: BaseException) -> str:
    """The innermost cause's message: "Activity task failed" says nothing to a person."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) or type(error).__name__


def stop_if_cancelled(error: ActivityError) -> None:
    """An activity cancelled because its step was interrupted surfaces as an ActivityError;
    the step must stop, not treat it as a failed call and go on."""
    if isinstance(error.cause, CancelledError):
        raise asyncio.CancelledError() from error


def sandbox_lost(error: ActivityError) -> bool:
    """Whether a tool call failed because its sandbox's worker or container is gone."""
    cause = error.cause
    return host_gone(error) or (isinstance(cause, ApplicationError) and cause.type == "SandboxGone")


def host_gone(error: ActivityError) -> bool:
    """Whether a call failed because the host holding its sandbox did not take it in time."""
    cause = error.cause
    return isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START


def no_slot(error: ActivityError) -> bool:
    """Whether an acquisition was refused because its worker hosts all the sandboxes it admits."""
    return isinstance(error.cause, ApplicationError) and error.cause.type == "NoSandboxSlot"
