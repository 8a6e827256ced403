"""Admission control: a worker hosts at most `max_sandboxes` live sandboxes; runs beyond it
wait for a slot (`waiting_for_sandbox`), durably, and all complete. A run whose wait outlasts
its time budget ends with its budget, having made no sandbox.

Each test runs a worker of its own (in this process, on a queue of its own) with a small
cap, and samples the engine while its runs go: the worker's live containers never exceed it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from tether import client as tether
from tether.plugin import TetherPlugin
from tether.sandbox.admission import default_limit
from tether.sandbox.manager import LABEL_WORKER
from tether.worker import serve

from tests.helpers import sandboxes, suite_settings
from tests.scripts import scripted_run, turn


@asynccontextmanager
async def capped_worker(client: Client, cap: int) -> AsyncIterator[tuple[str, str]]:
    """A worker admitting `cap` sandboxes; yields its queue and worker id."""
    worker_id = f"admission-{uuid.uuid4().hex[:8]}"
    queue = f"admission-{uuid.uuid4().hex[:8]}"
    settings = suite_settings().model_copy(update={"worker_id": worker_id, "max_sandboxes": cap})
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(client, stop, task_queue=queue, plugin=TetherPlugin(settings)))
    await asyncio.sleep(0.5)
    if serving.done():
        serving.result()
    try:
        yield queue, worker_id
    finally:
        stop.set()
        await serving
        for container in sandboxes().managed(**{LABEL_WORKER: worker_id}):
            sandboxes().remove(container.id)


class Sampler:
    """Counts the worker's live containers on the engine every 100 ms."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.peak = 0
        self.samples = 0

    async def run(self) -> None:
        while True:
            live = await asyncio.to_thread(sandboxes().managed, **{LABEL_WORKER: self.worker_id})
            self.peak = max(self.peak, len(live))
            self.samples += 1
            await asyncio.sleep(0.1)


async def watch_states(client: Client, ids: list[str], seen: set[str], done: asyncio.Event) -> None:
    """Collects every state the runs' `status` query shows while they go."""
    while not done.is_set():
        for workflow_id in ids:
            try:
                seen.add((await tether.get_status(client, workflow_id)).state)
            except Exception:  # a run that has not started its first task yet
                pass
        await asyncio.sleep(0.2)


def test_default_limit_comes_from_memory():
    assert default_limit(512, host_mb=24 * 1024) == 36
    assert default_limit(4096, host_mb=2048) == 1  # one sandbox always fits


async def test_more_runs_than_slots_all_complete_never_over_the_cap(temporal_client, worker):
    cap, runs = 2, 5
    async with capped_worker(temporal_client, cap) as (queue, worker_id):
        sampler = Sampler(worker_id)
        sampling = asyncio.create_task(sampler.run())
        handles = [
            await tether.start_run(temporal_client, scripted_run(
                f"admission {n}", turn(shell="sleep 1; echo one"), turn(shell="echo two"),
                turn(f"run {n} done")), task_queue=queue)
            for n in range(runs)
        ]
        seen: set[str] = set()
        done = asyncio.Event()
        watching = asyncio.create_task(watch_states(temporal_client, [h.id for h in handles], seen, done))
        try:
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 180)
        finally:
            done.set()
            sampling.cancel()
            await watching
    assert [r.status for r in results] == ["completed"] * runs
    assert [r.output for r in results] == [f"run {n} done" for n in range(runs)]
    assert sampler.samples > 10
    assert 1 <= sampler.peak <= cap, f"{sampler.peak} live sandboxes on a worker admitting {cap}"
    assert "waiting_for_sandbox" in seen, f"no run was seen waiting for a slot: {seen}"


async def test_a_wait_longer_than_the_budget_ends_with_the_budget(temporal_client, worker):
    async with capped_worker(temporal_client, 1) as (queue, worker_id):
        holder = await tether.start_run(temporal_client, scripted_run(
            "hold the only slot", turn(shell="sleep 8"), turn("held")), task_queue=queue)
        while not sandboxes().managed(**{LABEL_WORKER: worker_id}):
            await asyncio.sleep(0.1)
        waiter = await tether.start_run(temporal_client, scripted_run(
            "wait for a slot", turn(shell="echo never"), turn("never"),
            budget={"max_seconds": 3}), task_queue=queue)
        await asyncio.sleep(1.5)
        assert (await tether.get_status(temporal_client, waiter.id)).state == "waiting_for_sandbox"
        waited = await asyncio.wait_for(waiter.result(), 60)
        assert waited.status == "budget_exhausted", waited
        assert "max_seconds" in waited.stop_reason or "time" in waited.stop_reason, waited.stop_reason
        assert (await asyncio.wait_for(holder.result(), 60)).status == "completed"
    assert not sandboxes().for_run(waiter.id), "the run that never got a slot left a sandbox"
