"""Chaos: eight runs of forty steps, each step a real shell call appending to a ledger in the
run's sandbox, while the suite, at moments drawn from a printed seed, kills the worker twice
(SIGKILL, then a new worker with the same id), kills the executor inside one run's
container, `docker kill`s another run's container, kills the Temporal dev server (SIGKILL)
and starts it again on its database, and stops the Docker engine and starts it again.

Every run must complete; every append must happen exactly once in each sandbox it was made
in; a run whose sandbox was lost must say so in its transcript and status, and run the call
again in the new sandbox; no container may be left; every run must end soon after the last
fault; the worker's memory must stay steady. The time each kind of fault cost the runs it
affected is written to a report (`TETHER_CHAOS_REPORT`, a directory; the test's own by
default) for BENCHMARKS.md.

Everything here is the suite's own: a second Docker engine (tests/chaos/engine.py), a
Temporal dev server on a port and SQLite file of its own, and the worker as a process of its
own, so SIGKILL is real and no other session's tests are touched.

Replay a failure with `TETHER_CHAOS_SEED=<seed> make chaos`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus
from tether import client as tether
from tether.contracts import AgentRunResult

from tests.chaos.engine import EngineUnavailable, PrivateEngine
from tests.chaos.figures import KINDS, Fault, Report, RunEvents, progress_after, run_events, summary
from tests.chaos.ledger import check_ledgers, ledger_run
from tests.helpers import wait_for
from tests.test_temporal_unreachable import DevServer, WorkerSubprocess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

RUNS = 8
STEPS = 48
"""With the ledger's read and the final answer, the 50 steps the transcript keeps, which
the ledger check reads; two seconds a step (STEP_SLEEP_S) leave room for every fault."""
FAULTS = ["worker_kill", "worker_kill", "executor_kill", "container_kill", "temporal_kill",
          "engine_restart"]
STEPS_LEFT_FOR_A_FAULT = 4
"""A run hit by a fault must still have calls to make after it."""
PROGRESS_TIMEOUT_S = 120
"""A run that makes no progress this long after a fault is stuck."""
END_AFTER_LAST_FAULT_S = 150
"""Every run ends within this after the last fault was repaired."""
WORKER_KILL_P50_LIMIT_S = 8
"""Runs go on about 4 s after a killed worker's successor starts (the goal is 5 s); before
the successor handed back its predecessor's calls and freed its runs' sticky queues, 16 s."""
RSS_GROWTH_LIMIT_MB = 64
"""The worker's memory, from 10 s into its life to its end: steady, not a leak per step."""


@pytest.fixture
def chaos_engine() -> Iterator[PrivateEngine]:
    try:
        engine = PrivateEngine()
    except EngineUnavailable as why:
        pytest.skip(f"chaos needs a Docker engine of its own: {why}")
    try:
        engine.start()
        engine.load_image()
    except EngineUnavailable as why:
        engine.remove_everything()
        pytest.skip(f"chaos needs a Docker engine of its own, and this one failed: {why}")
    try:
        yield engine
    finally:
        engine.remove_everything()
        assert engine.leftovers() == [], "the chaos engine left things on the machine"


@pytest.fixture
def seed() -> int:
    value = int(os.environ.get("TETHER_CHAOS_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nchaos seed {value} (replay with TETHER_CHAOS_SEED={value})")
    return value


class Chaos:
    """The parts the faults act on, and what happened when."""

    def __init__(self, engine: PrivateEngine, server: DevServer, worker: WorkerSubprocess,
                 client: Client, rng: random.Random) -> None:
        self.engine = engine
        self.server = server
        self.worker = worker
        self.client = client
        self.rng = rng
        self.faults: list[Fault] = []
        self.rss: dict[int, list[tuple[float, float]]] = {}
        """Each worker process's resident memory over its life: (time, MB)."""

    # -- the faults --

    async def worker_kill(self, runs: list[str]) -> Fault:
        assert self.worker.process is not None
        at = time.time()
        self.worker.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.worker.process.wait)
        await asyncio.sleep(self.rng.uniform(0, 1.5))  # as an orchestrator would, soon
        repaired = time.time()
        self.worker.start()
        await self.worker.wait_polling(self.client, timeout=90)
        return Fault("worker_kill", at, repaired, detail={"polling_after_start_s": time.time() - repaired})

    async def executor_kill(self, runs: list[str]) -> Fault:
        target, container = await self._a_sandbox(runs)
        at = time.time()
        api = self.engine.client().api
        # From the host: the executor is the container's init, which nothing inside may kill.
        state = await asyncio.to_thread(api.inspect_container, container)
        os.kill(state["State"]["Pid"], signal.SIGKILL)
        return Fault("executor_kill", at, at, target=target)

    async def container_kill(self, runs: list[str]) -> Fault:
        target, container = await self._a_sandbox(runs)
        at = time.time()
        await asyncio.to_thread(self.engine.client().api.kill, container)
        return Fault("container_kill", at, at, target=target)

    async def temporal_kill(self, runs: list[str]) -> Fault:
        at = time.time()
        await asyncio.to_thread(self.server.kill)
        await asyncio.sleep(self.rng.uniform(1, 4))
        await asyncio.to_thread(self.server.start)
        repaired = time.time()
        self.client = await tether.connect(address=self.server.address)
        return Fault("temporal_kill", at, repaired)

    async def engine_restart(self, runs: list[str]) -> Fault:
        at = time.time()
        await asyncio.to_thread(self.engine.stop)
        stopped = time.time()
        await asyncio.sleep(self.rng.uniform(2, 5))
        await asyncio.to_thread(self.engine.start)
        repaired = time.time()
        return Fault("engine_restart", at, repaired, detail={"stopping_s": stopped - at,
                                                             "away_s": repaired - stopped})

    async def _a_sandbox(self, runs: list[str]) -> tuple[str, str]:
        """A run chosen at random, and its running container."""
        target = self.rng.choice(sorted(runs))
        sandboxes = self.engine.sandboxes()

        def running() -> list[str]:
            return [c.id for c in sandboxes.for_run(target) if c.status == "running"]

        await wait_for(running, timeout=60, what=f"{target}'s sandbox to run")
        return target, running()[0]

    # -- watching --

    async def steps(self, workflow_id: str) -> int | None:
        """The run's step, or None when it has ended; -1 when it can't be asked now."""
        handle = tether.get_run(self.client, workflow_id)
        try:
            description = await asyncio.wait_for(handle.describe(), 5)
            if description.status != WorkflowExecutionStatus.RUNNING:
                return None
            return (await asyncio.wait_for(tether.get_status(self.client, workflow_id), 5)).step
        except Exception:
            return -1

    async def wait_for_progress(self, fault: Fault, runs: list[str]) -> None:
        """Until each run made progress again after the fault, as the figures count it (so
        that the next fault never lands on a recovery still under way), or has ended."""
        async def progressed(workflow_id: str) -> bool:
            try:
                history = await asyncio.wait_for(
                    tether.get_run(self.client, workflow_id).fetch_history(), 10)
            except Exception:
                return False  # the server is not back yet
            events = run_events(history.events)
            return events.closed is not None or workflow_id in progress_after(fault, {workflow_id: events})

        async def all_progressed() -> bool:
            return all([await progressed(run) for run in runs])

        try:
            await wait_for(all_progressed, timeout=PROGRESS_TIMEOUT_S, every=0.5,
                           what=f"runs {runs} to make progress again (stuck?)")
        except BaseException:
            print(await self.diagnosis(runs))
            raise

    async def diagnosis(self, runs: list[str]) -> str:
        """What a stuck run waits on, and the worker's last words."""
        lines = []
        for run in runs:
            try:
                description = await asyncio.wait_for(tether.get_run(self.client, run).describe(), 10)
                pending = [f"{p.activity_type.name} {PendingActivityState.Name(p.state)} attempt "
                           f"{p.attempt} ({p.last_failure.message[:200]})"
                           for p in description.raw_description.pending_activities]
                lines.append(f"{run}: {description.status}, pending {pending}")
            except Exception as error:
                lines.append(f"{run}: can't describe ({error!r})")
        return "\n".join([*lines, "worker log:", self.worker.log()[-6000:]])

    async def sample_memory(self) -> None:
        while True:
            process = self.worker.process
            if process is not None and process.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    status = Path(f"/proc/{process.pid}/status").read_text()
                    kb = int(next(line for line in status.splitlines()
                                  if line.startswith("VmRSS:")).split()[1])
                    self.rss.setdefault(process.pid, []).append((time.time(), kb / 1024))
            await asyncio.sleep(1)

    def rss_lives(self) -> list[dict[str, float]]:
        lives = []
        for samples in self.rss.values():
            start = samples[0][0]
            settled = next((mb for t, mb in samples if t >= start + 10), samples[-1][1])
            lives.append({"seconds": samples[-1][0] - start, "after_10s": settled,
                          "peak": max(mb for _, mb in samples), "end": samples[-1][1]})
        return lives


@pytest.fixture
async def chaos(chaos_engine: PrivateEngine, seed: int, tmp_path: Path) -> AsyncIterator[Chaos]:
    server = DevServer(tmp_path)
    worker = WorkerSubprocess(address=server.address, data_dir=tmp_path / "data",
                              log_file=tmp_path / "worker.log", env={"DOCKER_HOST": chaos_engine.host})
    sampler: asyncio.Task[None] | None = None
    try:
        server.start()
        client = await tether.connect(address=server.address)
        worker.start()
        await worker.wait_polling(client, timeout=90)
        state = Chaos(chaos_engine, server, worker, client, random.Random(seed))
        sampler = asyncio.create_task(state.sample_memory())
        yield state
    finally:
        if sampler is not None:
            sampler.cancel()
        await worker.stop()
        server.stop()


async def test_runs_survive_every_fault_at_random_moments_exactly_once_and_leave_nothing(
    chaos: Chaos, seed: int, tmp_path: Path,
):
    rng = chaos.rng
    started = time.time()
    handles = [await tether.start_run(chaos.client, ledger_run(n, STEPS), task_queue=chaos.worker.queue,
                                      workflow_id=f"chaos-{seed}-{n}") for n in range(RUNS)]
    runs = [handle.id for handle in handles]

    async def all_under_way() -> bool:
        return all([(await chaos.steps(run) or 0) >= 2 for run in runs])

    await wait_for(all_under_way, timeout=90, every=0.5, what="every run's first call")
    order = list(FAULTS)
    rng.shuffle(order)
    for kind in order:
        await asyncio.sleep(rng.uniform(1, 4))
        before = {run: await chaos.steps(run) for run in runs}
        short = {run: step for run, step in before.items()
                 if step is None or step > STEPS - STEPS_LEFT_FOR_A_FAULT}
        assert not short, f"runs near their end before the {kind} ({short}): make STEPS larger"
        fault = await getattr(chaos, kind)(runs)
        chaos.faults.append(fault)
        print(f"{fault.at - started:6.1f} s  {kind}" + (f" of {fault.target}" if fault.target else "")
              + f", repaired after {fault.repaired - fault.at:.1f} s")
        await chaos.wait_for_progress(fault, [fault.target] if fault.target else runs)
    last_repair = chaos.faults[-1].repaired

    results: list[AgentRunResult] = await asyncio.wait_for(
        asyncio.gather(*(tether.get_run(chaos.client, run).result() for run in runs)),
        timeout=END_AFTER_LAST_FAULT_S)

    sandboxes = chaos.engine.sandboxes()
    await wait_for(lambda: sandboxes.managed() == [], timeout=30, what="no container left")

    # -- what each run did --
    events = {run: run_events((await tether.get_run(chaos.client, run).fetch_history()).events)
              for run in runs}
    checks = {run: check_ledgers(await tether.get_transcript(chaos.client, run), STEPS) for run in runs}
    statuses = {run: await tether.get_status(chaos.client, run) for run in runs}
    every_sample = [{"fault": fault.kind, "at_s": round(fault.at - started, 1), "run": run, **sample}
                    for fault in chaos.faults for run, sample in progress_after(fault, events).items()]
    progress = {}
    for kind in KINDS:
        samples = [sample for sample in every_sample if sample["fault"] == kind]
        progress[kind] = {"from_repair_s": summary([s["from_repair_s"] for s in samples]),
                          "from_fault_s": summary([s["from_fault_s"] for s in samples])}
    report = Report(
        seed=seed, runs=RUNS, steps=STEPS,
        seconds=max(e.closed or 0 for e in events.values()) - started, faults=chaos.faults,
        completed=sum(r.status == "completed" for r in results),
        duplicates=sum(c.duplicates for c in checks.values()),
        missing=sum(c.missing for c in checks.values()),
        failed_calls=sum(c.failed_calls for c in checks.values()),
        sandboxes_lost=sum(e.acquires - 1 for e in events.values()),
        containers_left=len(sandboxes.managed()), progress=progress,
        worker_rss_mb=chaos.rss_lives(), samples=every_sample)
    written = report.write(Path(os.environ.get("TETHER_CHAOS_REPORT") or tmp_path / "report"))
    print(f"\n{report.markdown()}\nreport: {written}")

    # -- every run completed, each append once per sandbox, each lost sandbox said so --
    assert [r.status for r in results] == ["completed"] * RUNS, results
    for run, result, check in zip(runs, results, checks.values(), strict=True):
        assert check.problems == [], (run, check.problems)
        assert (check.duplicates, check.missing) == (0, 0), (run, check)
        assert result.output is not None and [int(n) for n in result.output.split()] == check.last_ledger
        assert check.sandboxes == events[run].acquires, (run, check, events[run])
        assert check.lost_notes == check.restarted_at, (run, check)
        if check.restarted_at:
            assert "lost" in (statuses[run].last_error or ""), (run, statuses[run].last_error)
    for fault in chaos.faults:
        if fault.target is not None:  # the sandbox it hit was replaced, after the fault
            replaced = _first_calls_in_new_sandboxes(checks[fault.target].restarted_at, events[fault.target])
            assert any(t > fault.at for t in replaced), (fault, checks[fault.target])
    # Sandboxes are lost to the engine's restart (every run still making calls) and the two
    # kills, and to nothing else: a killed worker's or server's runs keep theirs.
    [engine_fault] = [fault for fault in chaos.faults if fault.kind == "engine_restart"]
    still_calling = [run for run, e in events.items() if any(t > engine_fault.at for t in e.tool_completions)]
    expected_losses = len(still_calling) + 2
    assert report.sandboxes_lost == expected_losses, {run: c.restarted_at for run, c in checks.items()}
    # -- nothing stuck, nothing left, memory steady --
    for run in runs:
        closed = events[run].closed
        assert closed is not None and closed - last_repair < END_AFTER_LAST_FAULT_S, (run, closed)
    assert report.containers_left == 0
    recovery = progress["worker_kill"]["from_repair_s"]["p50"]
    assert recovery is not None and recovery < WORKER_KILL_P50_LIMIT_S, progress["worker_kill"]
    final = chaos.rss_lives()[-1]
    assert final["end"] - final["after_10s"] < RSS_GROWTH_LIMIT_MB, chaos.rss_lives()


def _first_calls_in_new_sandboxes(steps: list[int], events: RunEvents) -> list[float]:
    """When the first call in each replacement sandbox completed (one tool call per step)."""
    return [events.tool_completions[step - 1] for step in steps]
