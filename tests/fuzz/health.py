"""The one property every fuzz case ends with: the run is not stuck retrying a workflow task.

A workflow task that raises is retried by Temporal forever, silently: the run looks alive
and never moves. Two views catch it: `describe()` shows a pending workflow task on a second
or later attempt, and the history holds a WorkflowTaskFailed event for every failed attempt.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import WorkflowHandle
from tether.contracts import RunStatus, names

# Not a failure of tether's code: the server refuses a task's commands when new events came
# in while it ran (a message during the last step), and the next task handles them.
_BENIGN = {WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND}


async def workflow_task_failures(handle: WorkflowHandle) -> list[str]:
    """Every failed workflow task of the run, by its cause and message, plus a pending task
    on a retry attempt (one that failed, not yet recorded if it keeps failing the same way)."""
    problems = []
    description = await handle.describe()
    raw = description.raw_description
    if raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt > 1:
        problems.append(f"pending workflow task on attempt {raw.pending_workflow_task.attempt}")
    history = await handle.fetch_history()
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            continue
        failed = event.workflow_task_failed_event_attributes
        if failed.cause in _BENIGN:
            continue
        problems.append(f"{WorkflowTaskFailedCause.Name(failed.cause)}: {failed.failure.message}")
    return problems


async def assert_healthy(handle: WorkflowHandle) -> None:
    problems = await workflow_task_failures(handle)
    assert not problems, f"run {handle.id} has failing workflow tasks: {problems}"


async def status(handle: WorkflowHandle) -> RunStatus:
    """The run's live status, asked of the suite's worker directly."""
    return await handle.query(names.QUERY_STATUS, result_type=RunStatus)  # type: ignore[no-any-return]
