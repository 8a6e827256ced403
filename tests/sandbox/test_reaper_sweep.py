"""The reaper: what it removes (closed or unknown runs, a dead worker's pool, the too old)
and what it never touches (the live pool, running runs, containers it didn't create)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from docker.errors import NotFound
from temporalio.client import Client
from tether import client as tether
from tether.activities.sandboxes import SandboxActivities
from tether.contracts import SandboxSpec, names
from tether.sandbox.manager import LABEL_CREATED, LABEL_POOL, labels_for, run_name
from tether.sandbox.pool import WarmPool
from tether.settings import TetherSettings

from tests.helpers import sandboxes, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn

WORKER = os.environ["TETHER_WORKER_ID"]
SPEC = SandboxSpec(memory_mb=64, pids=16, disk_mb=4)


def reaper(client: Client, pool: WarmPool | None = None,
           ttl_seconds: float | None = None) -> SandboxActivities:
    """The sweep the suite worker runs, as that worker's identity sees its engine."""
    return SandboxActivities(sandboxes=sandboxes(), client=client, worker_id=WORKER,
                             host_queue=f"unused@{WORKER}", pool=pool, ttl_seconds=ttl_seconds)


def exists(container_id: str) -> bool:
    try:
        sandboxes().engine.api.inspect_container(container_id)
        return True
    except NotFound:
        return False


async def make(labels: dict[str, str], name: str | None = None) -> str:
    container = await asyncio.to_thread(
        sandboxes().create, SPEC, labels, name=name or f"tether-pool-{uuid.uuid4().hex[:12]}")
    return container.id


async def dead_pool_container() -> str:
    """A container of a pool this worker ran in an earlier life (never started here)."""
    return await make(WarmPool(sandboxes(), worker=WORKER, size=1).labels())


async def sleeping_run(client: Client, queue: str):
    handle = await tether.start_run(
        client, scripted_run("sleeper", turn(shell="sleep 60"), turn("done")), task_queue=queue)
    await wait_for(lambda: sandboxes_of(handle.id), what="the sleeper's sandbox")
    return handle


async def stop(handle) -> None:
    await handle.execute_update(names.UPDATE_CANCEL, "the test is over")
    await handle.result()


async def test_the_reaper_removes_what_a_dead_workers_pool_left_and_keeps_the_live_pool(
    temporal_client: Client, worker: str
):
    live = WarmPool(sandboxes(), worker=WORKER, size=1)
    live.start()
    try:
        await asyncio.wait_for(live.filled(), timeout=60)
        stale = await dead_pool_container()
        report = await reaper(temporal_client, pool=live).sweep()
        assert not exists(stale)
        assert any(name.startswith("tether-pool-") for name in report.removed)
        live_containers = sandboxes().managed(**{LABEL_POOL: live.instance})
        assert len(live_containers) == live.size
        assert all(c.status == "running" for c in live_containers)
    finally:
        await live.drain()


async def test_the_reaper_judges_a_claimed_container_by_the_run_its_executor_names(
    temporal_client: Client, worker: str
):
    sleeper = await sleeping_run(temporal_client, worker)
    finished = await tether.start_run(
        temporal_client, scripted_run("quick", turn("done")), task_queue=worker)
    await finished.result()
    never_started = f"never-started-{uuid.uuid4().hex[:8]}"
    claims = {}
    for workflow_id in (sleeper.id, finished.id, never_started):
        container_id = await dead_pool_container()
        await asyncio.to_thread(sandboxes().claim, container_id, workflow_id, "some-run")
        claims[workflow_id] = container_id
    await reaper(temporal_client).sweep()
    assert exists(claims[sleeper.id])  # its run is running
    assert not exists(claims[finished.id])  # its run has closed
    assert not exists(claims[never_started])  # Temporal has never heard of its run
    await asyncio.to_thread(sandboxes().remove, claims[sleeper.id])
    await stop(sleeper)


async def test_the_reaper_removes_sandboxes_older_than_the_ttl(
    temporal_client: Client, worker: str, monkeypatch: pytest.MonkeyPatch
):
    sleeper = await sleeping_run(temporal_client, worker)
    old = {**labels_for(sleeper.id, sleeper.result_run_id, WORKER),
           LABEL_CREATED: "2000-01-01T00:00:00+00:00"}
    container_id = await make(old, name=run_name(sleeper.id))
    await reaper(temporal_client).sweep()
    assert exists(container_id)  # no TTL configured: its run is running, so it stays
    await reaper(temporal_client).sweep(max_age_seconds=3600)
    assert not exists(container_id)
    container_id = await make(old, name=run_name(sleeper.id))
    # A pool container that waited long before its run claimed it: its age is the claim's.
    claimed = await make({**WarmPool(sandboxes(), worker=WORKER, size=1).labels(),
                          LABEL_CREATED: "2000-01-01T00:00:00+00:00"})
    await asyncio.to_thread(sandboxes().claim, claimed, sleeper.id, sleeper.result_run_id)
    monkeypatch.setenv("TETHER_SANDBOX_TTL_SECONDS", "3600")
    await reaper(temporal_client, ttl_seconds=TetherSettings().sandbox_ttl_seconds).sweep()
    assert not exists(container_id)
    assert exists(claimed)
    await asyncio.to_thread(sandboxes().remove, claimed)
    # The run's own sandbox is younger than the TTL.
    assert len(sandboxes_of(sleeper.id)) == 1
    await stop(sleeper)


async def test_the_reaper_never_touches_containers_it_did_not_create(
    temporal_client: Client, worker: str
):
    unknown_run = f"never-started-{uuid.uuid4().hex[:8]}"
    another_worker = await make({**labels_for(unknown_run, "r", "some-other-worker")})
    not_tethers = sandboxes().engine.containers.run(
        SPEC.image, detach=True, network_mode="none", labels={"tether.test": "not managed"},
        name=f"not-tether-{uuid.uuid4().hex[:8]}").id
    try:
        # Both would be orphans by the reaper's rules (a run Temporal doesn't know, no run
        # at all) were they its own.
        await reaper(temporal_client).sweep()
        assert exists(another_worker) and exists(not_tethers)
    finally:
        await asyncio.to_thread(sandboxes().remove, another_worker)
        sandboxes().engine.api.remove_container(not_tethers, force=True)

