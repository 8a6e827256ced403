"""Reading runs: queries that say so when no worker can answer, and the list of runs from
Temporal's visibility with tether's search attributes. Re-exported by `tether.client`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistoryEventFilterType
from temporalio.service import RPCError, RPCStatusCode
from tether.contracts import AgentRunResult
from tether.contracts.activities import MODEL_CALL
from tether.contracts.listing import RunListing
from tether.contracts.names import AGENT_RUN
from tether.encryption.codec import UNDECODABLE

QUERY_TIMEOUT = timedelta(seconds=10)
"""How long a query may wait for a worker to answer it."""
UNPOLLED_QUERY_TIMEOUT = timedelta(seconds=3)
"""How long, when no worker has polled the run's queue lately: a worker that has just
started may not be listed yet, so it still gets a moment to answer."""


class NoWorker(RuntimeError):
    """No worker answered a question about a run: none polls its task queue, or none in time."""


class CannotDecode(RuntimeError):
    """The worker serving a run cannot decrypt its payloads; the message names the key."""


async def query(client: Client, workflow_id: str, name: str, *args: Any, result_type: type) -> Any:
    """Asks a run a query. Workers answer queries; with none polling the run's queue, or none
    answering in `QUERY_TIMEOUT`, raises `NoWorker` saying so rather than hanging."""
    handle = client.get_workflow_handle(workflow_id, result_type=AgentRunResult)
    description = await handle.describe()  # an unknown id fails here, with NOT_FOUND
    polled = await workers_polling(client, description.task_queue) > 0
    try:
        return await handle.query(name, *args, result_type=result_type,
                                  rpc_timeout=QUERY_TIMEOUT if polled else UNPOLLED_QUERY_TIMEOUT)
    except RPCError as error:
        if timed_out(error):
            raise await unanswered(client, workflow_id, description.task_queue, polled) from error
        raise


@dataclass(frozen=True)
class Ending:
    """How a closed run ended, from Temporal: its state, why, and how long it ran."""

    state: Literal["completed", "failed", "cancelled"]
    reason: str | None
    seconds: float


async def ending_of(client: Client, workflow_id: str) -> Ending | None:
    """How the run ended, read from its close event; None while it runs. A run that fails,
    is terminated, times out or is cancelled from Temporal says so there, whatever state its
    workflow had last published."""
    handle = client.get_workflow_handle(workflow_id)
    description = await handle.describe()
    if description.status in (None, WorkflowExecutionStatus.RUNNING) or description.close_time is None:
        return None
    started = description.start_time
    first = description.raw_description.workflow_execution_info.first_run_id
    if first and first != description.run_id:  # it continued as new: it began with its first
        started = (await client.get_workflow_handle(workflow_id, run_id=first).describe()).start_time
    seconds = round((description.close_time - started).total_seconds(), 3)
    async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT):
        if event.HasField("workflow_execution_failed_event_attributes"):
            failure = event.workflow_execution_failed_event_attributes.failure
            error = await client.data_converter.decode_failure(failure)
            return Ending("failed", str(error) or failure.message, seconds)
        if event.HasField("workflow_execution_terminated_event_attributes"):
            why = event.workflow_execution_terminated_event_attributes.reason
            return Ending("failed", f"terminated from Temporal: {why or 'no reason given'}", seconds)
        if event.HasField("workflow_execution_timed_out_event_attributes"):
            return Ending("failed", "timed out: its Temporal execution timeout passed", seconds)
        if event.HasField("workflow_execution_canceled_event_attributes"):
            return Ending("cancelled", "cancelled from Temporal", seconds)
    return Ending("completed", None, seconds)


async def unanswered(client: Client, workflow_id: str, task_queue: str, polled: bool) -> RuntimeError:
    """Why no worker answered about a run in time: the worker serving it fails its workflow
    tasks because it cannot decrypt the run (it says so in clear, `KeyErrorsInClear`), or
    there is no worker."""
    if polled:
        failure = await last_task_failure(client, workflow_id)
        if failure is not None and failure.startswith(UNDECODABLE):
            return CannotDecode(failure)
    return no_worker(task_queue, workflow_id, polled)


async def last_task_failure(client: Client, workflow_id: str) -> str | None:
    """The message of the run's workflow task failure since its last completed one, if any
    (Temporal records the first of a failing task's attempts)."""
    failure = None
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("workflow_task_failed_event_attributes"):
            failure = event.workflow_task_failed_event_attributes.failure.message
        elif event.HasField("workflow_task_completed_event_attributes"):
            failure = None
    return failure


def no_worker(task_queue: str, workflow_id: str, polled: bool) -> NoWorker:
    if not polled:
        return NoWorker(f"no worker polls task queue {task_queue!r}, so nothing can answer "
                        f"about run {workflow_id}")
    return NoWorker(f"no worker on task queue {task_queue!r} answered about run {workflow_id} "
                    f"in {QUERY_TIMEOUT.total_seconds():g} s")


def timed_out(error: RPCError) -> bool:
    # The client's own deadline shows as DEADLINE_EXCEEDED or CANCELLED, or as "Timeout expired".
    return (error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)
            or "Timeout expired" in str(error))


async def partial_text(client: Client, workflow_id: str) -> str | None:
    """What the model in flight has written so far, from its call's heartbeat (None when no
    model call is streaming): a long call can be watched without adding to history."""
    description = await client.get_workflow_handle(workflow_id).describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != MODEL_CALL or not pending.heartbeat_details.payloads:
            continue
        [details] = await client.data_converter.decode(pending.heartbeat_details.payloads)
        if isinstance(details, dict) and details.get("partial_text"):
            return str(details["partial_text"])
    return None


async def workers_polling(client: Client, task_queue: str) -> int:
    """How many workers Temporal has seen polling `task_queue` for workflow tasks lately
    (one that stopped stays listed for a few minutes)."""
    described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
    return len(described.pollers)


async def list_runs(
    client: Client, *, status: str | None = None, since: timedelta | None = None, limit: int = 50,
    forks: bool = False, fork_of: str | None = None,
) -> list[RunListing]:
    """Runs from Temporal's visibility, newest first, with tether's search attributes. A run
    that continued as new is listed once, by its latest execution. `forks`: only forks;
    `fork_of`: only the forks of that run."""
    from tether.workflows.visibility import COST, FINAL_PHASES, FORK_OF, MODEL, STATUS, STEPS

    clauses = [f'WorkflowType = "{AGENT_RUN}"', 'ExecutionStatus != "ContinuedAsNew"']
    if status:
        clauses.append(f'{STATUS.name} = "{status}"')
    if fork_of is not None:
        clauses.append(f'{FORK_OF.name} = {quoted(fork_of)}')
    elif forks:
        clauses.append(f'{FORK_OF.name} IS NOT NULL')
    if since is not None:
        start = (datetime.now(UTC) - since).strftime("%Y-%m-%dT%H:%M:%SZ")
        clauses.append(f'StartTime > "{start}"')
    runs = []
    async for execution in client.list_workflows(" AND ".join(clauses), limit=limit):
        attributes = execution.typed_search_attributes
        closed = execution.status.name.lower() if execution.status else "running"
        published = attributes.get(STATUS)
        # A closed run whose last published state is not an ending (ended from Temporal, or
        # by a worker older than that publishing) is listed as Temporal closed it.
        ended = published in FINAL_PHASES or execution.status == WorkflowExecutionStatus.RUNNING
        runs.append(RunListing(
            workflow_id=execution.id, run_id=execution.run_id,
            state=published if published and ended else closed, steps=attributes.get(STEPS),
            cost_usd=attributes.get(COST), model=attributes.get(MODEL),
            fork_of=attributes.get(FORK_OF),
            parent_id=execution.parent_id,
            started_at=execution.start_time, closed_at=execution.close_time,
            task_queue=execution.task_queue))
    return runs


def quoted(value: str) -> str:
    """`value` as a string of Temporal's list filter, whatever quotes it holds."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
