"""The OCI runtime a sandbox runs under (`SandboxSpec.runtime`, e.g. runsc for gVisor)."""

from __future__ import annotations

import asyncio
import json
import resource
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether
from tether.contracts import SandboxSpec
from tether.sandbox.hardening import HOST_NPROC, memory_limit_mb
from tether.sandbox.manager import SandboxBroken

from tests.helpers import sandboxes, sandboxes_of
from tests.sandbox.attacks import RUNTIMES, gvisor, require
from tests.sandbox.direct import call, direct_labels
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


LIMITS = """
import json, resource
print(json.dumps({"address_space": resource.getrlimit(resource.RLIMIT_AS)[0],
                  "processes": resource.getrlimit(resource.RLIMIT_NPROC)[0]}))
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
async def test_each_runtime_gets_the_limits_that_hold_under_it(docker_engine, runtime: str):
    spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=16, runtime=require(runtime))
    container = await asyncio.to_thread(
        sandboxes().create, spec, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    try:
        host = container.attrs["HostConfig"]
        assert host["Runtime"] == runtime
        assert host["Memory"] == memory_limit_mb(spec) << 20
        env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
        assert env["TETHER_MEMORY_MB"] == "128"
        seen = json.loads((await call(container.id, LIMITS, tool="python")).stdout)
        if gvisor(runtime):
            # The host's pids limit also holds gVisor's own threads and stub processes; its
            # kernel holds the tools to `pids`, and each tool to memory_mb of address space.
            assert host["PidsLimit"] > spec.pids
            assert seen == {"address_space": 128 << 20, "processes": 64}
            assert env["TETHER_ADDRESS_SPACE_MB"] == "128"
        else:
            assert host["PidsLimit"] == spec.pids
            assert seen == {"address_space": resource.RLIM_INFINITY, "processes": HOST_NPROC}
            assert "TETHER_ADDRESS_SPACE_MB" not in env
    finally:
        await asyncio.to_thread(sandboxes().remove, container.id)
