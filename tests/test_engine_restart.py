"""The Docker engine stopped for a few seconds and started again under runs in flight: the
runs wait for it instead of failing, a call whose sandbox the restart took runs again in a new
one and says so, and no container is left after the runs end.

It stops the machine's own engine, so it runs only where the suite may do that: a local
dockerd started by `scripts/ensure_docker.sh` (as `make test` does), as root."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from temporalio.client import Client
from tether import client as tether

from tests.helpers import sandboxes, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn

ROOT = Path(__file__).resolve().parents[1]
PID_FILE = Path("/var/run/docker.pid")
ENGINE_AWAY_S = 5
TOOL_STEPS = 12  # of a second each: the runs outlast the engine's stop, absence and start

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def local_dockerd() -> int | None:
    try:
        pid = int(PID_FILE.read_text())
        return pid if Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd" else None
    except (OSError, ValueError):
        return None


async def restart_engine() -> None:
    pid = local_dockerd()
    assert pid is not None
    os.kill(pid, 15)
    await wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=60, what="dockerd to stop")
    await asyncio.sleep(ENGINE_AWAY_S)
    started = await asyncio.to_thread(subprocess.run, [str(ROOT / "scripts" / "ensure_docker.sh")],
                                      capture_output=True, text=True)
    assert started.returncode == 0, started.stderr


@pytest.mark.skipif(os.geteuid() != 0 or local_dockerd() is None or os.environ.get("DOCKER_HOST"),
                    reason="needs root and the local dockerd that scripts/ensure_docker.sh starts")
async def test_runs_in_flight_wait_out_an_engine_restart_and_leave_nothing_behind(
    temporal_client: Client, worker: str
):
    runs = [await tether.start_run(temporal_client, scripted_run(
        f"run {n}", *[turn(shell=f"sleep 1; echo {n}-{step}") for step in range(TOOL_STEPS)],
        turn("{{last_output}}")), task_queue=worker) for n in range(3)]

    async def steps_done(run) -> int:
        return (await tether.get_status(temporal_client, run.id)).budget.steps

    async def all_under_way() -> bool:  # each run holds its sandbox and has made a call in it
        return all([await steps_done(run) >= 2 for run in runs])

    await wait_for(all_under_way, timeout=60, what="every run's first call")
    # One more run, whose sandbox is asked for while the engine is away.
    late = scripted_run("run 3", {**turn(shell=f"echo 3-{TOOL_STEPS - 1}"), "delay_seconds": 1},
                        turn("{{last_output}}"))
    runs.append(await tether.start_run(temporal_client, late, task_queue=worker))
    try:
        await restart_engine()
    finally:
        if local_dockerd() is None:  # whatever happened, the rest of the suite needs an engine
            subprocess.run([str(ROOT / "scripts" / "ensure_docker.sh")], check=False)
    # A run with two or more calls still to make when the engine answers again makes at
    # least one of them in a container the restart took: that call must say so.
    behind = [run for run in runs[:3] if await steps_done(run) < TOOL_STEPS - 1]
    assert behind, "every run had finished its calls before the engine came back: make them longer"
    results = await asyncio.wait_for(asyncio.gather(*(run.result() for run in runs)), timeout=180)
    assert [r.status for r in results] == ["completed"] * 4
    assert [r.output for r in results] == [f"{n}-{TOOL_STEPS - 1}" for n in range(4)]
    for run in behind:
        note = (await tether.get_status(temporal_client, run.id)).last_error or ""
        assert "lost" in note, (run.id, note)
    await wait_for(lambda: all(sandboxes_of(run.id) == [] for run in runs), timeout=30,
                   what="no container of the runs left")
    assert sandboxes().engine.ping()
