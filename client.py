"""Typed helpers for applications that start and watch tether runs.

    from tether.client import connect, start_run
    client = await connect()
    handle = await start_run(client, AgentRunInput(task="...", model=...))
    result = await handle.result()          # an AgentRunResult
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, Interceptor, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from tether.contracts import AgentRunInput, AgentRunResult, RunStatus, StepRecord
from tether.settings import TetherSettings

__all__ = ["connect", "get_run", "get_status", "get_transcript", "partial_text", "run", "start_run"]


async def connect(
    settings: TetherSettings | None = None,
    *,
    address: str | None = None,
    namespace: str | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A Temporal client with the pydantic data converter tether's contracts need, for the
    server `settings` name (TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE by default).

    Raises `ConnectionError` ("the Temporal server at ADDRESS is unreachable: why", one
    line) when no Temporal server answers there; its cause is the SDK's own error."""
    settings = settings or TetherSettings()
    address = address or settings.temporal_address
    try:
        return await Client.connect(
            address,
            namespace=namespace or settings.namespace,
            data_converter=pydantic_data_converter,
            interceptors=interceptors,
        )
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
) -> WorkflowHandle[Any, AgentRunResult]:
    """Starts an `AgentRun`. The input is validated here first, so mistakes show at once."""
    run_input = input if isinstance(input, AgentRunInput) else AgentRunInput.model_validate(input)
    return await client.start_workflow(
        "AgentRun",
        run_input.model_dump(mode="json", exclude_unset=True),
        id=workflow_id or f"run-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue or TetherSettings().task_queue,
        result_type=AgentRunResult,
    )


async def run(client: Client, input: AgentRunInput | dict[str, Any], **kwargs: Any) -> AgentRunResult:
    """Starts a run and waits for its result."""
    handle = await start_run(client, input, **kwargs)
    return await handle.result()


def get_run(client: Client, workflow_id: str) -> WorkflowHandle[Any, AgentRunResult]:
    return client.get_workflow_handle(workflow_id, result_type=AgentRunResult)


async def get_status(client: Client, workflow_id: str) -> RunStatus:
    return await get_run(client, workflow_id).query("status", result_type=RunStatus)


async def partial_text(client: Client, workflow_id: str) -> str | None:
    """What the model in flight has written so far, from its call's heartbeat (None when no
    model call is streaming): a long call can be watched without adding to history."""
    description = await get_run(client, workflow_id).describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != "model_call" or not pending.heartbeat_details.payloads:
            continue
        [details] = await client.data_converter.decode(pending.heartbeat_details.payloads)
        if isinstance(details, dict) and details.get("partial_text"):
            return str(details["partial_text"])
    return None


async def get_transcript(client: Client, workflow_id: str) -> list[StepRecord]:
    return await get_run(client, workflow_id).query("transcript", result_type=list[StepRecord])
