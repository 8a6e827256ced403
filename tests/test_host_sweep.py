"""Every sandbox host sweeps its own engine on a period: a container whose run closed without
releasing it (terminated from outside) goes within one period, on every host, though no run
ever starts there again and the shared Schedule reaches only one host per tick."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from tether import client as tether

from tests.helpers import sandboxes, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SWEEP_SECONDS = 4


async def test_each_host_removes_a_closed_runs_container_within_one_period(
    temporal_client: Client, docker_engine, tmp_path: Path,
):
    hosts = [WorkerProcess(temporal_client, task_queue=f"sweep-{uuid.uuid4().hex[:8]}",
                           worker_id=f"sweep-{uuid.uuid4().hex[:6]}", log_file=tmp_path / f"{i}.log",
                           env={"TETHER_SWEEP_SECONDS": str(SWEEP_SECONDS)})
             for i in range(2)]
    try:
        await asyncio.gather(*(host.start() for host in hosts))
        handles = [await tether.start_run(temporal_client, scripted_run(
            "left behind", turn(shell="sleep 120"), turn("never")), task_queue=host.task_queue)
            for host in hosts]
        for handle in handles:
            await wait_for(lambda h=handle: sandboxes_of(h.id), timeout=60, what="a sandbox")
        # Terminated: the run's `finally` never runs, so nothing releases its sandbox.
        for handle in handles:
            await handle.terminate("gone without cleaning up")
        terminated = time.monotonic()
        for host, handle in zip(hosts, handles, strict=True):
            await wait_for(lambda h=handle: not sandboxes_of(h.id), timeout=SWEEP_SECONDS + 10,
                           what=f"{host.worker_id} to sweep its container")
        print(f"\nswept on both hosts {time.monotonic() - terminated:.1f} s after the runs closed "
              f"(period {SWEEP_SECONDS} s)")
    finally:
        for host in hosts:
            await host.stop()
    for host in hosts:
        left = sandboxes().managed(**{"tether.worker": host.worker_id})
        for container in left:
            sandboxes().remove(container.id)
        assert not left
