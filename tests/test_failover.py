"""Failover between hosts: two workers with their own data directories and worker ids share
one S3 store. kill -9 the one that holds a run's sandbox in the middle of a tool call and keep
it down: after the host wait (TETHER_HOST_WAIT_SECONDS) the run declares that host gone and
finishes on the other worker, in a new sandbox, reading the conversation the dead one wrote.
Started again, the first worker removes what it left and serves new work."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from tether import client as tether

from tests.helpers import sandboxes, sandboxes_of, wait_for
from tests.s3_server import SeaweedS3, s3_server_fixture  # noqa: F401  (the fixture)
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, tool_calls
from tests.workflows.test_worker_crash import pending_activity
from tests.workflows.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HOST_WAIT_SECONDS = 8


async def test_a_run_survives_the_host_that_holds_its_sandbox_dying_for_good(
    s3_server: SeaweedS3, temporal_client: Client, docker_engine, tmp_path: Path,
):
    queue = f"failover-{uuid.uuid4().hex[:8]}"
    store = f"s3://tether/failover-{uuid.uuid4().hex[:8]}"

    def host(name: str) -> WorkerProcess:
        return WorkerProcess(
            temporal_client, task_queue=queue, worker_id=f"{name}-{uuid.uuid4().hex[:6]}",
            log_file=tmp_path / f"{name}.log",
            env={**s3_server.env(), "TETHER_STORE_URL": store, "TETHER_DATA_DIR": str(tmp_path / name),
                 "TETHER_HOST_WAIT_SECONDS": str(HOST_WAIT_SECONDS), "TETHER_TRACE_FILE": "off"})

    first, second = host("first"), host("second")
    await first.start()
    try:
        handle = await tether.start_run(temporal_client, scripted_run(
            "failover",
            turn(shell="echo step1 > notes; cat notes"),
            turn(shell="sleep 20; echo never"),
            turn(python="print(6 * 7)"),
            turn("{{last_output}}")), task_queue=queue)
        await wait_for(lambda: sandboxes_of(handle.id), timeout=60,
                       what="the first sandbox")
        await wait_for(lambda: _at_step(temporal_client, handle.id, 2), timeout=60, what="step 2")
        await wait_for(lambda: pending_activity(handle, "tool_call"), timeout=60, what="step 2's call")
        [lost] = sandboxes_of(handle.id)
        await second.start()
        await first.kill()  # and it stays down until the run is over
        killed = time.monotonic()

        await wait_for(lambda: any(c.id != lost.id for c in sandboxes_of(handle.id)), timeout=60,
                       what="a new sandbox on the second worker")
        moved = time.monotonic() - killed
        result = await asyncio.wait_for(handle.result(), 120)
        finished = time.monotonic() - killed
        print(f"\nfailover: new sandbox {moved:.1f} s after kill -9, run complete {finished:.1f} s "
              f"after it (host wait {HOST_WAIT_SECONDS} s, tool heartbeat 5 s)")
        assert result.status == "completed" and result.output.strip() == "42"
        runs = await activities(temporal_client, handle)
        # The run tried to remove the lost sandbox through its host, which never answered.
        [removal] = [r for r in runs if r.summary == "remove lost sandbox"]
        assert removal.outcome == "timed_out"
        # Step 1's call ran where the workflow and the sandbox both were (the first host), as
        # a local activity. Step 2's, whose host died under it, ran again in the new sandbox
        # on the second host, which had taken the workflow over too: past the hand-off, on
        # that host's queue. Step 3's ran there as a local activity.
        calls = [r for r in tool_calls(runs) if r.outcome == "completed"]
        assert [(r.type, r.input["step"]) for r in calls] == [
            ("tool_call_here", 1), ("tool_call", 2), ("tool_call_here", 3)]
        assert calls[1].input["container_id"] != lost.id
        acquired = [r.result for r in runs if r.type == "acquire_sandbox" and r.outcome == "completed"]
        assert [a["worker"] for a in acquired] == [first.worker_id, second.worker_id]
        # Here both "hosts" share one engine, so the second one's acquire already removed the
        # run's old container (an acquire removes whatever of its run the engine holds); on
        # hosts of their own the first host's start sweep, below, removes it.

        # Back again (same id, same data dir): its start sweep removes what it left, since
        # that run is closed, and it takes new work.
        await first.start()
        assert sandboxes().managed(**{"tether.worker": first.worker_id}) == []
        await second.stop()
        again = await tether.start_run(temporal_client, scripted_run(
            "after", turn(python="print('back')"), turn("{{last_output}}")), task_queue=queue)
        assert (await asyncio.wait_for(again.result(), 60)).output.strip() == "back"
        acquired = [r.result for r in await activities(temporal_client, again)
                    if r.type == "acquire_sandbox"]
        assert [a["worker"] for a in acquired] == [first.worker_id]
    finally:
        await first.stop()
        await second.stop()
    for process in (first, second):
        left = sandboxes().managed(**{"tether.worker": process.worker_id})
        for container in left:
            sandboxes().remove(container.id)
        assert not left, process.worker_id


async def _at_step(client: Client, workflow_id: str, step: int) -> bool:
    return (await tether.get_status(client, workflow_id)).step == step
