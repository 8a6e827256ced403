"""100 concurrent sandboxed runs on one worker: throughput, turn latency, the worker's cost.

`RUNS` runs of `TURNS` turns each (a scripted model, one short `shell` call a turn), all
started at once on one tether worker in the benchmark's process, with its default admission
limit (`TETHER_MAX_SANDBOXES` unset: as many default sandboxes as fit in three quarters of
the host's memory): runs beyond the limit wait for a slot. Reported: runs per minute, p50
and p99 turn latency (from each run's history, the time from one model call's scheduling to
the next's), the worker process's CPU-seconds per turn (all of its threads: workflows,
activities, the Docker client), its peak resident memory, and the peak number of its
containers on the engine, sampled every 250 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any

from tether import client as tether
from tether.sandbox.manager import LABEL_WORKER

from bench.local_stack import Stack, local_stack
from bench.report import Report
from bench.turn_times import turn_seconds

RUNS = int(os.environ.get("BENCH_RUNS", "100"))
TURNS = 10


def run_input(n: int) -> dict[str, Any]:
    turns: list[dict[str, Any]] = [
        {"text": f"Run {n} turn {k}.",
         "tool_calls": [{"name": "shell", "arguments": {"command": f"echo {n}-{k}"}}]}
        for k in range(1, TURNS)
    ]
    turns.append({"text": f"Run {n} done."})
    return {"task": f"concurrency {n}", "tools": ["shell"],
            "model": {"provider": "scripted", "script": {"turns": turns}},
            "budget": {"max_steps": TURNS, "max_seconds": None}}


def cpu_seconds() -> float:
    """This process's user and system CPU time, all threads."""
    times = os.times()
    return times.user + times.system


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def sample_containers(stack: Stack, peaks: list[int]) -> None:
    sandboxes = stack.host.sandboxes.sandboxes
    worker = stack.plugin.settings.worker_id
    while True:
        live = await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: worker})
        peaks.append(len(live))
        await asyncio.sleep(0.25)


async def run(report: Report) -> None:
    async with local_stack("concurrency") as stack:
        slots = getattr(stack.host.sandboxes, "slots", None)
        limit = slots.limit if slots else None
        samples: list[int] = []
        sampling = asyncio.create_task(sample_containers(stack, samples))
        cpu_before, started = cpu_seconds(), time.monotonic()
        handles = await asyncio.gather(*(
            tether.start_run(stack.client, run_input(n), task_queue=stack.task_queue)
            for n in range(RUNS)))
        results = await asyncio.gather(*(handle.result() for handle in handles))
        seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
        sampling.cancel()
        histories = [list((await handle.fetch_history()).events) for handle in handles]
    completed = sum(r.status == "completed" and r.steps == TURNS for r in results)
    turns = sorted(s for events in histories
                   for s in turn_seconds(events, lambda name: name == "model_call"))
    p99 = turns[min(len(turns) - 1, int(0.99 * len(turns)))]
    report.console.print(f"  {completed} of {RUNS} runs completed in {seconds:,.1f} s; admission "
                         f"limit {limit}; {len(samples)} container samples")
    report.figure(f"{RUNS} concurrent runs of {TURNS} turns: completed", completed, "runs",
                  goal=f"all {RUNS}", met=completed == RUNS)
    report.figure("runs per minute", RUNS / seconds * 60, "runs/min")
    report.figure("turn latency p50", statistics.median(turns) * 1000, "ms")
    report.figure("turn latency p99", p99 * 1000, "ms")
    report.figure("worker CPU time per turn (bench process: worker and client)",
                  cpu / (RUNS * TURNS) * 1000, "ms")
    report.figure("worker peak memory (RSS)", peak_rss_mb(), "MB")
    peak = max(samples, default=0)
    report.figure("peak containers on the worker", peak, "containers",
                  goal=f"≤ the admission limit ({limit})", met=limit is None or peak <= limit)
