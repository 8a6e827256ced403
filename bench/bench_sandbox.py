"""Sandbox figures, each against a baseline measured in the same run on the same engine:

- a trivial tool call (`true`) through the in-container executor, against `docker exec` of
  `true` on the same container (calls interleaved, so both see the same machine);
- a warm acquire (a container claimed from the pool for a run), against creating and
  starting one (with the executor answering);
- cold start and teardown.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

from docker.models.containers import Container
from tether.contracts import SandboxSpec
from tether.sandbox.engine import connect_engine
from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER, SandboxManager
from tether.sandbox.pool import WarmPool

from bench.report import Report

CALLS = 200
ACQUIRES = 20
WARMUP = 5


def p50_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


async def timed(action) -> float:
    started = time.perf_counter()
    await action
    return time.perf_counter() - started


async def trivial_calls(
    sandboxes: SandboxManager, container: Container,
) -> tuple[list[float], list[float]]:
    """Seconds per call through the executor and per `docker exec`, interleaved."""
    through_executor, through_exec = [], []
    for n in range(WARMUP + CALLS):
        call = sandboxes.run_tool(container.id, tool="shell", arguments={"command": "true"},
                                  key=f"bench/{n}", timeout_s=10, limit_bytes=1024)
        executor_s = await timed(call)
        exec_s = await timed(asyncio.to_thread(container.exec_run, ["true"]))
        if n >= WARMUP:
            through_executor.append(executor_s)
            through_exec.append(exec_s)
    return through_executor, through_exec


async def acquires(
    sandboxes: SandboxManager, worker: str,
) -> tuple[list[float], list[float], list[float]]:
    """Seconds per warm acquire, per cold create+start, and per removal."""
    spec = SandboxSpec()
    pool = WarmPool(sandboxes, worker=worker, size=2, spec=spec)
    pool.start()
    warm, cold, teardown = [], [], []
    try:
        for n in range(ACQUIRES):
            await pool.filled()  # nothing else running while a figure is taken
            started = time.perf_counter()
            claimed = await pool.acquire(spec, f"bench-{worker}-{n}", "run")
            warm.append(time.perf_counter() - started)
            assert claimed is not None, "the pool had no container to hand out"
            await pool.filled()
            started = time.perf_counter()
            created = await asyncio.to_thread(
                sandboxes.create, spec, {LABEL_MANAGED: "1", LABEL_WORKER: worker},
                name=f"tether-bench-{uuid.uuid4().hex[:12]}")
            cold.append(time.perf_counter() - started)
            for container_id in (claimed, created.id):
                teardown.append(await timed(asyncio.to_thread(sandboxes.remove, container_id)))
    finally:
        await pool.drain()
    return warm, cold, teardown


async def run(report: Report) -> None:
    # The benchmark's own manager for this machine's engine, as a worker builds one.
    sandboxes = SandboxManager(await asyncio.to_thread(connect_engine))
    worker = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        container = await asyncio.to_thread(
            sandboxes.create, SandboxSpec(), {LABEL_MANAGED: "1", LABEL_WORKER: worker},
            name=f"tether-bench-{uuid.uuid4().hex[:12]}")
        executor_s, exec_s = await trivial_calls(sandboxes, container)
        await asyncio.to_thread(sandboxes.remove, container.id)
        warm_s, cold_s, teardown_s = await acquires(sandboxes, worker)
    finally:
        for leftover in await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: worker}):
            await asyncio.to_thread(sandboxes.remove, leftover.id)
        sandboxes.engine.close()

    call, baseline = p50_ms(executor_s), p50_ms(exec_s)
    report.figure(
        f"trivial tool call (`true`) through the executor, p50 of {CALLS}", call, "ms",
        goal="≤ 10 ms and ≥ 4x faster than docker exec", met=call <= 10 and baseline / call >= 4,
        baseline_name="docker exec `true`, same container", baseline=baseline,
    )
    warm, cold = p50_ms(warm_s), p50_ms(cold_s)
    report.figure(
        f"warm acquire from the pool, p50 of {ACQUIRES}", warm, "ms", goal="≤ 20 ms", met=warm <= 20,
        baseline_name="cold create + start", baseline=cold,
    )
    report.figure(f"cold start (create, start, executor answers), p50 of {ACQUIRES}", cold, "ms")
    report.figure(f"teardown (remove), p50 of {2 * ACQUIRES}", p50_ms(teardown_s), "ms")
