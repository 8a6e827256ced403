"""Every way to talk to a tether run, one typed call each: start it, read it, watch it,
steer it (approve, deny, cancel, message, extend) and fetch what it left. The `tether`
command is a layer over these; applications call them the same way.

    from tether.client import connect, start_run
    client = await connect()
    handle = await start_run(client, AgentRunInput(task="...", model=...))
    result = await handle.result()          # an AgentRunResult

A call the run refuses (an approval of no waiting call, a message to a run that ended)
raises the SDK's `WorkflowUpdateFailedError`, whose `cause` says why. One no worker can take
(none serves the run's queue, or none answers in 10 s) raises `NoWorker`, saying whether it
was sent (`tether.updating`).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from temporalio.client import (
    Client,
    Interceptor,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode
from tether.approvals import WaitingCall, read_waiting
from tether.connection import connect_config
from tether.contracts import (
    AgentRunInput,
    AgentRunResult,
    BudgetView,
    FinalStatus,
    RunArtifacts,
    RunStatus,
    StepRecord,
    Usage,
)
from tether.contracts.accounts import AccountLimits, AccountState, AccountView, Period, account_workflow_id
from tether.contracts.events import RunProgress
from tether.contracts.names import (
    AGENT_RUN,
    BUDGET_ACCOUNT,
    NEVER_STARTED,
    QUERY_ARTIFACTS,
    QUERY_PROGRESS,
    QUERY_SHOW_ACCOUNT,
    QUERY_STATUS,
    QUERY_TRANSCRIPT,
    SEARCH_FORK_OF,
    UPDATE_APPROVE,
    UPDATE_CANCEL,
    UPDATE_EXTEND_BUDGET,
    UPDATE_SEND_MESSAGE,
    UPDATE_SET_LIMITS,
)
from tether.encryption import data_converter
from tether.forking import ForkRefused, fork_input, read_origin
from tether.reading import Ending, NoWorker, ending_of, list_runs, partial_text, query, workers_polling
from tether.settings import TetherSettings
from tether.store import ContentAddressed, Conversations, open_blobs
from tether.store.files import ArtifactExists, Downloaded, upload_paths, write_artifacts
from tether.store.sealed import sealed
from tether.updating import update
from tether.watching import watch

__all__ = [
    "AccountNotFound",
    "ArtifactExists",
    "ForkRefused",
    "NoWorker",
    "WaitingCall",
    "account_status",
    "approve",
    "cancel",
    "connect",
    "deny",
    "download_artifacts",
    "extend",
    "fork_run",
    "get_artifacts",
    "get_in_flight",
    "get_run",
    "get_status",
    "get_transcript",
    "get_waiting_calls",
    "list_runs",
    "partial_text",
    "run",
    "send_message",
    "set_account",
    "start_run",
    "upload_files",
    "watch",
    "workers_polling",
]


FORK_OF = SearchAttributeKey.for_keyword(SEARCH_FORK_OF)


async def connect(
    settings: TetherSettings | None = None,
    *,
    address: str | None = None,
    namespace: str | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A Temporal client with tether's data converter (pydantic, and with
    TETHER_ENCRYPTION_KEYS, the encryption codec), connected as `tether.connection` reads the
    environment: a profile of Temporal's config file, the TEMPORAL_* variables (address,
    namespace, API key, TLS), then `settings`, then `address` and `namespace` given here.

    Raises `ConnectionError` ("the Temporal server at ADDRESS is unreachable: why", one
    line) when no Temporal server answers there; its cause is the SDK's own error."""
    settings = settings or TetherSettings()
    config = connect_config(settings)
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    address = config["target_host"]
    try:
        return await Client.connect(
            **config, data_converter=data_converter(settings.key_ring), interceptors=interceptors)
    except RuntimeError as error:
        # The SDK's connection failures are a RuntimeError wrapping a Rust error dump; its
        # first quoted message ("Connection refused", a DNS error, "Timeout expired") says why.
        text = str(error)
        if not text.startswith("Failed client connect"):
            raise
        why = re.search(r'(?:message|error): "([^"]+)"', text)
        reason = why.group(1) if why else text.removeprefix("Failed client connect: ")[:200]
        raise ConnectionError(f"the Temporal server at {address} is unreachable: {reason}") from error


async def start_run(
    client: Client,
    input: AgentRunInput | dict[str, Any],
    *,
    workflow_id: str | None = None,
    task_queue: str | None = None,
    files: Sequence[str | os.PathLike[str]] = (),
    settings: TetherSettings | None = None,
) -> WorkflowHandle[Any, AgentRunResult]:
    """Starts an `AgentRun`. The input is validated here first, so mistakes show at once.

    `files` (files and directories) are uploaded to the content store the workers read
    (`settings`' store) and placed in the run's /workspace; a missing or unfit one raises
    `FilesRefused` before anything starts."""
    run_input = input if isinstance(input, AgentRunInput) else AgentRunInput.model_validate(input)
    if run_input.budget.account is not None:
        await require_account(client, run_input.budget.account)
    if files:
        uploaded = upload_files(files, settings=settings)
        raw = run_input.model_dump(mode="json", exclude_unset=True)
        run_input = AgentRunInput.model_validate({**raw, "files": {**run_input.files, **uploaded}})
    return await client.start_workflow(
        AGENT_RUN,
        run_input.model_dump(mode="json", exclude_unset=True),
        id=workflow_id or f"run-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue or TetherSettings().task_queue,
        result_type=AgentRunResult,
        # What the Web UI shows for the run, in the list and on its page.
        static_summary=summary_of(run_input.task),
        static_details=f"**Task:** {run_input.task[:2000]}\n\n**Model:** {run_input.model.label}",
    )


async def fork_run(
    client: Client, run_id: str, *, at_step: int, changes: dict[str, Any] | None = None,
    workflow_id: str | None = None, task_queue: str | None = None,
    settings: TetherSettings | None = None,
) -> WorkflowHandle[Any, AgentRunResult]:
    """Starts a run that goes on from `run_id`'s step `at_step`: its conversation and
    workspace after that step, by digest, so nothing of steps 1 to `at_step` runs again.
    `changes` replace fields of the origin's input (`model`, `system_prompt`, `budget`, ...)
    and may add a person's `message`; a scripted model given plays from its first turn. The
    origin, running or closed, is only read. The store is `settings`' (the workers' own).

    Raises `ForkRefused`, saying why, for a step that can't be forked (one without a
    workspace snapshot when the run had a workspace, one whose calls did not end)."""
    origin = await read_origin(client, run_id)
    run_input = await fork_input(origin, at_step, changes or {},
                                 Conversations(content_store(settings)))
    return await client.start_workflow(
        AGENT_RUN,
        run_input.model_dump(mode="json", exclude_unset=True),
        id=workflow_id or f"{run_id}-fork-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue or origin.task_queue,
        result_type=AgentRunResult,
        search_attributes=TypedSearchAttributes([SearchAttributePair(FORK_OF, run_id)]),
        static_summary=summary_of(f"fork of {run_id} at step {at_step}: {run_input.task}"),
        static_details=f"**Fork of** {run_id} at step {at_step}\n\n**Task:** "
                       f"{run_input.task[:2000]}\n\n**Model:** {run_input.model.label}",
    )


def upload_files(
    paths: Sequence[str | os.PathLike[str]], *, settings: TetherSettings | None = None,
) -> dict[str, str]:
    """Puts files and directories in the content store the workers read (`settings`' store),
    for a run input's `files`: their paths in /workspace, each to its digest. A missing or
    unfit one raises `FilesRefused`; a store that fails, `StoreError`."""
    settings = settings or TetherSettings()
    return upload_paths(content_store(settings), paths, max_bytes=settings.max_file_mb << 20)


def summary_of(task: str, limit: int = 120) -> str:
    """The task on one line, shortened: the Web UI's summary of a run."""
    line = " ".join(task.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


async def run(client: Client, input: AgentRunInput | dict[str, Any], **kwargs: Any) -> AgentRunResult:
    """Starts a run and waits for its result."""
    handle = await start_run(client, input, **kwargs)
    return await handle.result()


def get_run(client: Client, workflow_id: str) -> WorkflowHandle[Any, AgentRunResult]:
    return client.get_workflow_handle(workflow_id, result_type=AgentRunResult)


async def get_status(client: Client, workflow_id: str) -> RunStatus:
    """The run's status. Once it has closed, its state and last error are how it ended (a run
    terminated from Temporal never published that itself), with its seconds stopped."""
    try:
        status: RunStatus = await query(client, workflow_id, QUERY_STATUS, result_type=RunStatus)
    except WorkflowQueryFailedError as error:
        # Only a run whose input was refused has no state to show; any other failure (a
        # worker that can't decrypt or replay it) is the answer, though the run has closed.
        ending = await ending_of(client, workflow_id) if NEVER_STARTED in str(error) else None
        if ending is None:
            raise
        return never_started(ending)
    if status.state in get_args(FinalStatus):
        return status  # the run said how it ended
    ending = await ending_of(client, workflow_id)
    if ending is None:
        return status
    return status.model_copy(update={
        "state": ending.state, "last_error": ending.reason or status.last_error,
        "pending_approvals": [],
        "budget": status.budget.model_copy(update={"seconds": ending.seconds})})


def never_started(ending: Ending) -> RunStatus:
    """The status of a run that ended before it had any state: nothing used, no limits known."""
    return RunStatus(
        state=ending.state, step=0, usage=Usage(), last_error=ending.reason, model="",
        budget=BudgetView(steps=0, max_steps=None, tokens=0, max_tokens=None, cost_usd=0.0,
                          max_cost_usd=None, seconds=ending.seconds, max_seconds=None))


async def get_transcript(client: Client, workflow_id: str) -> list[StepRecord]:
    return await query(client, workflow_id, QUERY_TRANSCRIPT, result_type=list[StepRecord])  # type: ignore[no-any-return]


async def get_in_flight(client: Client, workflow_id: str) -> tuple[StepRecord, RunStatus] | None:
    """The step an open run is in the middle of (its transcript holds only finished steps),
    from its model call on, with the run's status; None when it is between steps or closed."""
    if (await get_run(client, workflow_id).describe()).status != WorkflowExecutionStatus.RUNNING:
        return None
    progress: RunProgress = await query(client, workflow_id, QUERY_PROGRESS, 0, result_type=RunProgress)
    flying = progress.in_flight
    if flying is None or any(step.step >= flying.step for step in progress.steps):
        return None
    return flying, progress.status


async def get_waiting_calls(
    client: Client, workflow_id: str, *, settings: TetherSettings | None = None,
    status: RunStatus | None = None,
) -> list[WaitingCall]:
    """The calls a run waits to have approved, each whole (history holds long arguments cut):
    read from the content store the workers share (`settings`' store) and checked against
    the digest the run holds. One that can't be read whole says why in `problem`."""
    status = status or await get_status(client, workflow_id)
    settings = settings or TetherSettings()
    try:
        conversations: Conversations | None = Conversations(content_store(settings))
    except Exception:  # read_waiting says, per call, that it could not read it whole
        conversations = None
    return read_waiting(status, conversations, where=settings.store_location)


async def approve(
    client: Client, workflow_id: str, call_id: str, *, approved: bool = True,
    reason: str | None = None, digest: str | None = None,
) -> str:
    """Decides a call waiting for a person; returns what the run answered. With `digest` (the
    `arguments_digest` the person read), the run refuses the approval unless those are
    exactly the arguments that would run: a `WorkflowUpdateFailedError` says why."""
    args: list[Any] = [call_id, approved, reason]
    if digest is not None:  # a run older than digests takes three arguments
        args.append(digest)
    return await update(client, workflow_id, UPDATE_APPROVE, *args, result_type=str)


async def deny(client: Client, workflow_id: str, call_id: str, *, reason: str | None = None) -> str:
    """Refuses a call waiting for a person: it does not run, and the model reads the reason.
    Returns what the run answered."""
    return await approve(client, workflow_id, call_id, approved=False, reason=reason)


async def cancel(client: Client, workflow_id: str, reason: str | None = None) -> str:
    """Stops a run: the step in flight is interrupted and its sandbox removed; the result's
    `stop_reason` carries `reason`. Returns what the run answered."""
    args = [] if reason is None else [reason]
    return await update(client, workflow_id, UPDATE_CANCEL, *args, result_type=str)


async def send_message(client: Client, workflow_id: str, text: str) -> str:
    """Adds a person's message to the conversation; the model reads it at its next step.
    Returns what the run answered (the step it is queued for)."""
    return await update(client, workflow_id, UPDATE_SEND_MESSAGE, text, result_type=str)


async def extend(
    client: Client, workflow_id: str, *, max_steps: int | None = None, max_tokens: int | None = None,
    max_cost_usd: float | None = None, max_seconds: float | None = None,
) -> dict[str, int | float | None]:
    """Raises a run's limits by the amounts given; returns each limit named as it now is
    (None: it was unlimited, and stays so). Naming none is refused by the run."""
    more = {name: amount for name, amount in (
        ("max_steps", max_steps), ("max_tokens", max_tokens), ("max_cost_usd", max_cost_usd),
        ("max_seconds", max_seconds)) if amount is not None}
    limits: dict[str, int | float | None] = await update(
        client, workflow_id, UPDATE_EXTEND_BUDGET, more, result_type=dict)
    return limits


def content_store(settings: TetherSettings | None = None) -> ContentAddressed:
    """The content store the workers share, as `settings` (the environment) name it, opened
    as `TetherPlugin` opens it (encrypted when TETHER_ENCRYPTION_KEYS is set)."""
    settings = settings or TetherSettings()
    return ContentAddressed(sealed(open_blobs(settings.store_location), settings.key_ring))


async def get_artifacts(client: Client, workflow_id: str) -> RunArtifacts:
    """The artifacts a run collected when it ended (none while it runs): from its result when
    it completed, otherwise (failed, cancelled, timed out) from its `artifacts` query."""
    handle = get_run(client, workflow_id)
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        return RunArtifacts(artifacts=result.artifacts, skipped=result.skipped_artifacts)
    return await handle.query(QUERY_ARTIFACTS, result_type=RunArtifacts)


async def download_artifacts(
    client: Client, workflow_id: str, directory: str | os.PathLike[str], *,
    settings: TetherSettings | None = None, globs: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Downloaded:
    """Writes a run's artifacts under `directory`, and nowhere else: `written` lists the
    files, `skipped` what could not be written there (and why). With `globs`, only those
    they match; dotfiles only where a glob names them (`.git/*`). A file already in the
    directory raises `ArtifactExists`, nothing written, unless `overwrite`."""
    found = await get_artifacts(client, workflow_id)
    return write_artifacts(content_store(settings), found.artifacts, Path(directory),
                           globs=globs, overwrite=overwrite)


class AccountNotFound(LookupError):
    """No budget account of that name: `set_account` (`tether account set`) creates it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"budget account {name!r} does not exist: create it with "
                         f"`tether account set {name} --max-tokens N --max-cost-usd D`")
        self.name = name


async def set_account(
    client: Client, name: str, *, max_tokens: int | None = None,
    max_cost_usd: float | None = None, period: Period | None = None,
    task_queue: str | None = None,
) -> AccountView:
    """Creates the budget account `name`, or replaces its limits (None: unlimited), keeping
    what it has used. `period="day"`: usage starts again at each midnight UTC. Runs name it
    in `budget.account`; returns the account as it now is."""
    limits = AccountLimits(name=name, max_tokens=max_tokens, max_cost_usd=max_cost_usd, period=period)
    start: WithStartWorkflowOperation[Any, None] = WithStartWorkflowOperation(
        BUDGET_ACCOUNT, AccountState(limits=limits), id=account_workflow_id(name),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=task_queue or TetherSettings().task_queue,
        static_summary=f"budget account {name}")
    return await client.execute_update_with_start_workflow(  # type: ignore[no-any-return]
        UPDATE_SET_LIMITS, limits, start_workflow_operation=start, result_type=AccountView)


async def account_status(client: Client, name: str) -> AccountView:
    """The account's limits, what its period has used, what calls in flight hold, and when
    the period ends. Raises `AccountNotFound` when there is no such account."""
    try:
        return await query(  # type: ignore[no-any-return]
            client, account_workflow_id(name), QUERY_SHOW_ACCOUNT, result_type=AccountView)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise AccountNotFound(name) from None
        raise


async def require_account(client: Client, name: str) -> None:
    """Raises `AccountNotFound` unless the account's workflow runs: a run naming no account
    is refused before it starts (its worker would refuse it at its first model call)."""
    try:
        description = await client.get_workflow_handle(account_workflow_id(name)).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise AccountNotFound(name) from None
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise AccountNotFound(name)
