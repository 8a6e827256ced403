"""SIGTERM drains a worker: the tool call in flight finishes, no new tool call starts there,
the run moves to another worker in a new sandbox, the drained worker removes its sandbox
once the run has moved on, and exits within its grace period."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from tether import client as tether

from tests.helpers import sandboxes, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, tool_calls
from tests.workflows.test_worker_crash import pending_activity
from tests.workflows.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DRAIN_SECONDS = 40


async def test_sigterm_lets_the_call_finish_moves_the_run_and_leaves_nothing(
    temporal_client: Client, docker_engine, tmp_path: Path,
):
    queue = f"drain-{uuid.uuid4().hex[:8]}"

    def worker(name: str) -> WorkerProcess:
        return WorkerProcess(temporal_client, task_queue=queue, worker_id=f"{name}-{uuid.uuid4().hex[:6]}",
                             log_file=tmp_path / f"{name}.log",
                             env={"TETHER_DRAIN_SECONDS": str(DRAIN_SECONDS)})

    leaving, staying = worker("leaving"), worker("staying")
    await leaving.start()
    try:
        handle = await tether.start_run(temporal_client, scripted_run(
            "drain",
            turn(shell="sleep 6; echo first"),
            turn(shell="echo second"),
            turn("{{last_output}}")), task_queue=queue)
        await wait_for(lambda: pending_activity(handle, "tool_call"), timeout=60, what="the first call")
        [first_sandbox] = sandboxes_of(handle.id)
        await staying.start()  # only now: the first sandbox is the leaving worker's

        assert leaving.process is not None
        leaving.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.wait_for(leaving.process.wait(), DRAIN_SECONDS + 15)
        took = time.monotonic() - signalled
        assert leaving.process.returncode == 0, leaving.log()
        # Nothing of the drained worker is left on the engine once it has gone.
        assert sandboxes().managed(**{"tether.worker": leaving.worker_id}) == []

        result = await asyncio.wait_for(handle.result(), 90)
        print(f"\ndrained in {took:.1f} s (grace {DRAIN_SECONDS} s)")
        assert took < DRAIN_SECONDS, leaving.log()  # left once the run had moved on, not at the deadline
        assert result.status == "completed" and result.output.strip() == "second"
        transcript = await tether.get_transcript(temporal_client, handle.id)
        [first_result] = transcript[0].tool_results
        assert first_result.stdout.strip() == "first"
        assert first_result.exit_code == 0  # finished, not cut by the shutdown

        runs = await activities(temporal_client, handle)
        calls = [r for r in tool_calls(runs) if r.outcome == "completed"]
        assert calls[0].type == "tool_call" and calls[0].input["container_id"] == first_sandbox.id
        # The second call ran in a new sandbox on the staying worker, which runs the workflow
        # now too: as a local activity there.
        assert calls[-1].type == "tool_call_here"
        assert [r.summary for r in runs].count("acquire sandbox") == 2
        status = await tether.get_status(temporal_client, handle.id)
        assert status.last_error is not None and "shutting down" in status.last_error
        assert "remove lost sandbox" in [r.summary for r in runs]
    finally:
        await leaving.stop()
        await staying.stop()
    for process in (leaving, staying):
        left = sandboxes().managed(**{"tether.worker": process.worker_id})
        for container in left:
            sandboxes().remove(container.id)
        assert not left, process.worker_id
