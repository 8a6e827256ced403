"""Updates to a run (approve, cancel, send_message, extend_budget) that never hang: Temporal
holds an update until a worker takes it, so with no worker serving the run's queue, a plain
update waits for ever, silently. Re-exported by `tether.client`.

What is left behind, decided on purpose: with no worker polling the run's queue, the update
is not sent at all, so nothing is pending and the run goes on exactly as it was when a worker
starts. With a worker listed there (Temporal lists one that stopped for a few minutes) the
update is sent and waited for `UPDATE_TIMEOUT`; one that no worker took by then is not in the
run's history. Temporal keeps such an update only in its memory, and has no way to withdraw
it: a worker that takes the run up soon may still apply it, so the error says to check the
run's status before asking again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateRPCTimeoutOrCancelledError
from tether.contracts import AgentRunResult
from tether.contracts.names import UPDATE_APPROVE, UPDATE_CANCEL, UPDATE_EXTEND_BUDGET, UPDATE_SEND_MESSAGE
from tether.reading import NoWorker, workers_polling

T = TypeVar("T")

UPDATE_TIMEOUT = timedelta(seconds=10)
"""How long an update may wait for a worker to take it and answer."""

ASKED = {UPDATE_APPROVE: "the approval", UPDATE_CANCEL: "the cancel",
         UPDATE_SEND_MESSAGE: "the message", UPDATE_EXTEND_BUDGET: "the budget extension"}


async def update(client: Client, workflow_id: str, name: str, *args: Any, result_type: type[T]) -> T:
    """Sends update `name` to the run and returns its answer; raises `NoWorker`, saying what
    became of the update, when no worker serves the run's queue or none took it in time."""
    handle = client.get_workflow_handle(workflow_id, result_type=AgentRunResult)
    description = await handle.describe()  # an unknown id fails here, with NOT_FOUND
    queue, asked = description.task_queue, ASKED.get(name, f"the {name} update")
    # A closed run refuses the update at once, with its reason: only an open one can wait.
    if (description.status == WorkflowExecutionStatus.RUNNING
            and not await workers_polling(client, queue)):
        raise NoWorker(f"no worker is serving task queue {queue!r}: {asked} for run {workflow_id} "
                       "was not sent, and the run waits as it is")
    try:
        return await handle.execute_update(name, args=args, result_type=result_type,
                                           rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateRPCTimeoutOrCancelledError as error:
        raise NoWorker(
            f"no worker on task queue {queue!r} took {asked} for run {workflow_id} in "
            f"{UPDATE_TIMEOUT.total_seconds():g} s (the one listed there may have stopped): it is "
            f"not recorded, though a worker that takes the run up soon may still apply it; "
            f"check `tether status {workflow_id}` before asking again") from error
