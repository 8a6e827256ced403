"""The warm pool: ready, hardened, unclaimed containers, claimed once by one run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError
from temporalio.client import Client
from tether import client as tether
from tether.contracts import SandboxSpec
from tether.sandbox.manager import LABEL_POOL, LABEL_RUN, LABEL_WORKER, LABEL_WORKFLOW, SandboxClaimed
from tether.sandbox.pool import WarmPool
from tether.settings import TetherSettings

from tests.helpers import sandboxes, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess


@pytest.fixture
async def pool(docker_engine) -> AsyncIterator[WarmPool]:
    """A pool of two under a worker name of its own; drained, and its claims removed, after."""
    warm = WarmPool(sandboxes(), worker=f"pool-test-{uuid.uuid4().hex[:8]}", size=2)
    warm.start()
    await asyncio.wait_for(warm.filled(), timeout=60)
    yield warm
    await warm.drain()
    for container in await asyncio.to_thread(sandboxes().managed, **{LABEL_WORKER: warm.worker}):
        await asyncio.to_thread(sandboxes().remove, container.id)


def containers_of(pool: WarmPool) -> list:
    return sandboxes().managed(**{LABEL_WORKER: pool.worker})


def served_run(container) -> tuple[str, str] | None:
    identity = sandboxes().identity_of(container)
    return identity and (identity.workflow_id, identity.run_id)


async def test_the_pool_fills_with_ready_hardened_unclaimed_containers(pool: WarmPool):
    containers = containers_of(pool)
    assert len(containers) == 2 and pool.idle == 2
    for container in containers:
        assert container.status == "running"
        assert container.name.startswith("tether-pool-")
        assert container.labels[LABEL_POOL] == pool.instance
        assert LABEL_WORKFLOW not in container.labels and LABEL_RUN not in container.labels
        assert sandboxes().identity_of(container) is None
        host = container.attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
        assert container.attrs["Config"]["User"] == "10001:10001"


async def test_acquiring_claims_a_container_for_one_run_and_the_pool_refills(pool: WarmPool):
    claimed = await pool.acquire(SandboxSpec(), "wf-pool-1", "run-1")
    assert claimed is not None
    [found] = sandboxes().for_run("wf-pool-1")
    assert found.id == claimed
    assert "wf-pool-1" in found.name
    assert served_run(found) == ("wf-pool-1", "run-1")
    result = await sandboxes().run_tool(claimed, tool="shell", arguments={"command": "echo claimed"},
                            key="wf-pool-1/1/0", timeout_s=10, limit_bytes=1024)
    assert result.stdout == "claimed\n"
    await asyncio.wait_for(pool.filled(), timeout=60)
    assert pool.idle == 2
    assert len(containers_of(pool)) == 3


async def test_a_claimed_container_is_never_handed_to_another_run(pool: WarmPool):
    claimed = await pool.acquire(SandboxSpec(), "wf-pool-2", "run-2")
    assert claimed is not None
    with pytest.raises(SandboxClaimed, match="wf-pool-2"):
        sandboxes().claim(claimed, "wf-pool-3", "run-3")
    assert sandboxes().for_run("wf-pool-3") == []
    [container] = sandboxes().for_run("wf-pool-2")
    assert served_run(container) == ("wf-pool-2", "run-2")


async def test_only_runs_whose_container_settings_match_are_served_from_the_pool(pool: WarmPool):
    assert await pool.acquire(SandboxSpec(memory_mb=256), "wf-pool-4", "run-4") is None
    assert pool.idle == 2
    # Timeout and output limit are settings of each call, not of the container.
    fits = SandboxSpec(tool_timeout_seconds=5, output_limit_bytes=1024)
    assert await pool.acquire(fits, "wf-pool-5", "run-5") is not None


async def test_pool_containers_that_died_are_discarded_not_handed_out(pool: WarmPool):
    for container in containers_of(pool):
        sandboxes().engine.api.remove_container(container.id, force=True)
    assert await pool.acquire(SandboxSpec(), "wf-pool-6", "run-6") is None
    await asyncio.wait_for(pool.filled(), timeout=60)
    assert await pool.acquire(SandboxSpec(), "wf-pool-6", "run-6") is not None


async def test_draining_removes_unclaimed_containers_and_leaves_claimed_ones(pool: WarmPool):
    claimed = await pool.acquire(SandboxSpec(), "wf-pool-7", "run-7")
    await pool.drain()
    assert [c.id for c in containers_of(pool)] == [claimed]
    assert pool.idle == 0


async def test_a_worker_with_a_pool_runs_default_runs_in_pool_containers(
    temporal_client: Client, docker_engine, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    # The pool is off by default (pool containers can't carry the run labels); this worker
    # turns it on.
    monkeypatch.setenv("TETHER_POOL_SIZE", "2")
    queue = f"pooled-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=queue,
                           log_file=tmp_path / "worker.log")
    await worker.start()
    try:
        def idle_pool() -> bool:
            return sum(1 for c in sandboxes().managed(**{LABEL_WORKER: queue})
                       if c.status == "running" and LABEL_POOL in c.labels) >= 2

        await wait_for(idle_pool, timeout=60, what="the worker's pool to fill")
        await asyncio.sleep(1)  # each container is handed out once its executor answers
        pooled = await tether.start_run(
            temporal_client, scripted_run("pooled", turn(shell="sleep 2"), turn("done")),
            task_queue=queue)
        created = await tether.start_run(
            temporal_client, scripted_run("created", turn(shell="sleep 2"), turn("done"),
                                          sandbox={"memory_mb": 256}), task_queue=queue)
        await wait_for(lambda: sandboxes_of(pooled.id) and sandboxes_of(created.id),
                       what="both runs' sandboxes")
        [from_pool] = sandboxes_of(pooled.id)
        assert from_pool.labels[LABEL_POOL].startswith(f"{queue}/")
        assert served_run(from_pool) == (pooled.id, pooled.result_run_id)
        [made] = sandboxes_of(created.id)
        assert LABEL_POOL not in made.labels
        assert made.labels[LABEL_WORKFLOW] == created.id
        assert made.labels[LABEL_RUN] == created.result_run_id
        assert served_run(made) == (created.id, created.result_run_id)
        for handle in (pooled, created):
            assert (await handle.result()).status == "completed"
            assert sandboxes_of(handle.id) == []
    finally:
        await worker.stop()
    assert sandboxes().managed(**{LABEL_WORKER: queue}) == []  # the pool was drained at shutdown


def test_the_pool_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TETHER_POOL_SIZE", raising=False)
    assert TetherSettings().pool_size == 0
    monkeypatch.setenv("TETHER_POOL_SIZE", "5")
    assert TetherSettings().pool_size == 5
    monkeypatch.setenv("TETHER_POOL_SIZE", "lots")
    with pytest.raises(ValidationError, match="pool_size"):
        TetherSettings()
