"""The OCI runtime a sandbox runs under (`SandboxSpec.runtime`, e.g. runsc for gVisor)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether
from tether.contracts import SandboxSpec
from tether.sandbox.manager import SandboxBroken

from tests.helpers import sandboxes, sandboxes_of
from tests.sandbox.direct import direct_labels
from tests.scripts import scripted_run, turn


async def test_a_named_runtime_is_the_one_the_container_runs_under(docker_engine):
    container = await asyncio.to_thread(
        sandboxes().create, SandboxSpec(runtime="runc"), direct_labels(),
        name=f"tether-test-{uuid.uuid4().hex[:12]}")
    try:
        assert container.attrs["HostConfig"]["Runtime"] == "runc"
    finally:
        await asyncio.to_thread(sandboxes().remove, container.id)


def test_an_unknown_runtime_is_refused_as_broken_not_retried(docker_engine):
    with pytest.raises(SandboxBroken, match="Unknown runtime specified no-such-runtime"):
        sandboxes().create(SandboxSpec(runtime="no-such-runtime"), direct_labels(),
                       name=f"tether-test-{uuid.uuid4().hex[:12]}")


async def test_an_unknown_runtime_fails_the_run_once_with_a_clear_message(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("gvisor", turn(shell="echo hi"), turn("done"),
                     sandbox={"runtime": "no-such-runtime"}),
        task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    messages = []
    while cause is not None:
        messages.append(str(cause))
        cause = cause.__cause__
    assert any("Unknown runtime specified no-such-runtime" in m for m in messages), messages
    attempts = [e.activity_task_started_event_attributes.attempt
                async for e in handle.fetch_history_events()
                if e.HasField("activity_task_started_event_attributes")]
    # start_conversation, model call, one acquire attempt: the error is not retried.
    assert attempts and max(attempts) == 1
    assert sandboxes_of(handle.id) == []
