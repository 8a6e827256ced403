"""gVisor (runsc) against runc, the engine's default, each measured in the same run on the
same engine, runtime after runtime in turn so both see the same machine:

- cold start: create, start, and the executor answering;
- per-call overhead: a trivial tool call (`true`), and a python tool that starts and prints;
- a CPU-bound tool: python counting primes by trial division for about a second.

Needs the engine to have a runtime named runsc (`scripts/ensure_docker.sh` registers it);
without one the benchmark says so and records nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from tether.contracts import SandboxSpec
from tether.sandbox.engine import connect_engine
from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER, SandboxManager

from bench.bench_sandbox import p50_ms, timed
from bench.report import Report

RUNTIMES = ("runc", "runsc")
STARTS = 10
CALLS = 100
CPU_RUNS = 5
WARMUP = 3
PRIMES = """
n, count = 2, 0
while n < 300_000:
    d = 2
    while d * d <= n:
        if n % d == 0:
            break
        d += 1
    else:
        count += 1
    n += 1
print(count)
"""
"""About a second of pure CPU in one python process; 25,997 primes."""


class Bench:
    def __init__(self, sandboxes: SandboxManager, worker: str) -> None:
        self.sandboxes = sandboxes
        self.worker = worker

    async def create(self, runtime: str) -> str:
        container = await asyncio.to_thread(
            self.sandboxes.create, SandboxSpec(runtime=runtime),
            {LABEL_MANAGED: "1", LABEL_WORKER: self.worker},
            name=f"tether-bench-{uuid.uuid4().hex[:12]}")
        return container.id

    async def call(self, container_id: str, tool: str, source: str, n: int) -> None:
        arguments = {"command": source} if tool == "shell" else {"code": source}
        result = await self.sandboxes.run_tool(container_id, tool=tool, arguments=arguments,
                                               key=f"bench/{n}", timeout_s=120, limit_bytes=1024)
        assert result.exit_code == 0, result

    async def cold_starts(self) -> dict[str, list[float]]:
        """Seconds per create + start + executor answering, runtimes taking turns."""
        seconds: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        for n in range(WARMUP + STARTS):
            for runtime in RUNTIMES:
                started = time.perf_counter()
                container_id = await self.create(runtime)
                if n >= WARMUP:
                    seconds[runtime].append(time.perf_counter() - started)
                await asyncio.to_thread(self.sandboxes.remove, container_id)
        return seconds

    async def calls(self, tool: str, source: str, count: int) -> dict[str, list[float]]:
        """Seconds per call of the tool in one container per runtime, calls taking turns."""
        containers = {runtime: await self.create(runtime) for runtime in RUNTIMES}
        seconds: dict[str, list[float]] = {runtime: [] for runtime in RUNTIMES}
        try:
            for n in range(WARMUP + count):
                for runtime, container_id in containers.items():
                    took = await timed(self.call(container_id, tool, source, n))
                    if n >= WARMUP:
                        seconds[runtime].append(took)
        finally:
            for container_id in containers.values():
                await asyncio.to_thread(self.sandboxes.remove, container_id)
        return seconds


async def run(report: Report) -> None:
    sandboxes = SandboxManager(await asyncio.to_thread(connect_engine))
    worker = f"bench-{uuid.uuid4().hex[:8]}"
    runtimes = set((await asyncio.to_thread(sandboxes.engine.info)).get("Runtimes") or {})
    if "runsc" not in runtimes:
        report.console.print("  the engine has no runsc runtime (scripts/ensure_docker.sh registers"
                             " it): nothing to compare")
        sandboxes.engine.close()
        return
    bench = Bench(sandboxes, worker)
    try:
        cold = await bench.cold_starts()
        trivial = await bench.calls("shell", "true", CALLS)
        python = await bench.calls("python", "print(1)", CALLS // 2)
        cpu = await bench.calls("python", PRIMES, CPU_RUNS)
    finally:
        for leftover in await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: worker}):
            await asyncio.to_thread(sandboxes.remove, leftover.id)
        sandboxes.engine.close()

    for name, seconds, count in [
        ("cold start (create, start, executor answers)", cold, STARTS),
        ("trivial tool call (`true`)", trivial, CALLS),
        ("python tool call (`print(1)`)", python, CALLS // 2),
        ("CPU-bound python tool (primes, about 1 s)", cpu, CPU_RUNS),
    ]:
        report.figure(f"gVisor: {name}, p50 of {count}", p50_ms(seconds["runsc"]), "ms",
                      baseline_name="runc, same run", baseline=p50_ms(seconds["runc"]))
