"""Idle release and snapshots through the suite's real worker, engine and store: a run that
waits for a person past `sandbox.idle_release_seconds` snapshots its workspace and holds no
container; after the approval its next tool call sees the same workspace (modes, a link,
an empty directory) in a new sandbox. `every_step` records a snapshot per step; `off`
releases nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.client import Client
from tether import client as tether
from tether.contracts.files import digest_of
from tether.contracts.snapshots import SnapshotManifest

from tests.helpers import conversations, sandboxes, sandboxes_of, tether_cli, wait_for
from tests.scripts import scripted_run, turn

SETUP = ("mkdir -p src empty/inner && printf 'hi\\n' > src/a.txt && chmod 600 src/a.txt"
         " && printf '#!/bin/sh\\necho run\\n' > run.sh && chmod 755 run.sh"
         " && ln -s src/a.txt latest && chmod 750 src")
LISTING = """
import hashlib, os
for directory, dirs, files in sorted(os.walk('/workspace')):
    for name in sorted(dirs + files):
        path = os.path.join(directory, name)
        info = os.lstat(path)
        if os.path.islink(path):
            print(path, 'link', os.readlink(path))
        elif os.path.isdir(path):
            print(path, 'dir', oct(info.st_mode & 0o7777), info.st_uid)
        else:
            print(path, 'file', oct(info.st_mode & 0o7777), info.st_uid,
                  hashlib.sha256(open(path, 'rb').read()).hexdigest())
"""
SHOW = "python3 - <<'EOF'\n" + LISTING + "EOF"


def labelled(workflow_id: str) -> list[Any]:
    """The run's containers as `docker ps -a --filter label=tether.workflow_id=ID` lists them,
    and those claimed from a warm pool, named after the run."""
    by_label = sandboxes().engine.containers.list(
        all=True, filters={"label": f"tether.workflow_id={workflow_id}"})
    return [*by_label, *sandboxes_of(workflow_id)]


async def waiting_for(client: Client, workflow_id: str) -> bool:
    return bool((await tether.get_status(client, workflow_id)).pending_approvals)


async def test_a_run_waiting_for_approval_past_idle_release_holds_no_container_and_keeps_its_files(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "release while waiting",
        turn("set up", shell=f"{SETUP} && {SHOW}"),
        turn("look again", python=LISTING),
        turn("{{last_output}}"),
        approval={"tools": ["python"]}, sandbox={"idle_release_seconds": 1},
    ), task_queue=worker)
    await wait_for(lambda: waiting_for(temporal_client, handle.id), what="the approval")

    await wait_for(lambda: not labelled(handle.id), timeout=60, what="the idle sandbox to be removed")
    status = await tether.get_status(temporal_client, handle.id)
    assert status.sandbox == "released"
    assert status.state == "awaiting_approval"

    await tether.approve(temporal_client, handle.id, "2-0")
    result = await handle.result()
    [first] = [s for s in await tether.get_transcript(temporal_client, handle.id) if s.step == 1]
    before = first.tool_results[0].stdout
    assert "/workspace/latest link src/a.txt" in before
    assert "/workspace/empty/inner dir" in before
    assert "/workspace/src/a.txt file 0o600" in before
    assert result.output is not None and result.output.strip() == before.strip()


async def test_status_shows_the_sandbox_released_while_the_run_waits(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "released status", turn("touch", shell="touch a"), turn("again", python="print(1)"),
        turn("done"), approval={"tools": ["python"]}, sandbox={"idle_release_seconds": 1},
    ), task_queue=worker)
    await wait_for(lambda: waiting_for(temporal_client, handle.id), what="the approval")
    await wait_for(lambda: not labelled(handle.id), timeout=60, what="the idle sandbox to be removed")

    code, out, err = await tether_cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    assert "sandbox: released while idle" in out
    code, out, err = await tether_cli(temporal_address, worker, "status", handle.id, "--json")
    assert json.loads(out)["sandbox"] == "released"
    await tether.cancel(temporal_client, handle.id, "done looking")


async def test_snapshots_off_releases_nothing_however_long_the_run_waits(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "never released", turn("touch", shell="touch a"), turn("again", python="print(1)"),
        turn("done"), approval={"tools": ["python"]},
        sandbox={"idle_release_seconds": 0.5, "snapshots": "off"},
    ), task_queue=worker)
    await wait_for(lambda: waiting_for(temporal_client, handle.id), what="the approval")
    held = (await tether.get_status(temporal_client, handle.id)).sandbox
    await asyncio.sleep(4)  # eight times the idle release's wait

    assert len(labelled(handle.id)) >= 1
    assert (await tether.get_status(temporal_client, handle.id)).sandbox == held
    await tether.cancel(temporal_client, handle.id, "done looking")


async def test_every_step_records_the_workspace_after_each_step_and_an_unchanged_one_keeps_its_digest(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "every step",
        turn("write", shell="echo one > a.txt"),
        turn("read", shell="cat a.txt"),
        turn("write more", shell="echo two > b.txt"),
        turn("done"),
        sandbox={"snapshots": "every_step"},
    ), task_queue=worker)
    await handle.result()
    steps = {s.step: s for s in await tether.get_transcript(temporal_client, handle.id)}

    assert all(steps[n].snapshot for n in (1, 2, 3))
    assert steps[1].snapshot == steps[2].snapshot != steps[3].snapshot
    assert steps[4].snapshot is None  # the answer: no tool calls, no snapshot
    manifest = SnapshotManifest.model_validate_json(
        conversations().blobs.get(digest_of(steps[3].snapshot or "")))
    assert [(e.path, e.size) for e in manifest.entries] == [("a.txt", 4), ("b.txt", 4)]


async def test_a_run_that_ends_while_released_still_collects_its_artifacts(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "ends released", turn("write", shell="mkdir out && echo kept > out/report.txt"),
        turn("again", python="print(1)"), turn("done"),
        approval={"tools": ["python"]}, sandbox={"idle_release_seconds": 1}, artifacts=["out/*"],
    ), task_queue=worker)
    await wait_for(lambda: waiting_for(temporal_client, handle.id), what="the approval")
    await wait_for(lambda: not labelled(handle.id), timeout=60, what="the idle sandbox to be removed")
    await tether.deny(temporal_client, handle.id, "2-0", reason="not now")

    result = await handle.result()
    assert [(a.path, a.size) for a in result.artifacts] == [("out/report.txt", 5)]


async def test_a_call_still_running_beside_a_waiting_one_keeps_the_sandbox_until_it_ends(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run(
        "busy beside a wait", turn("both", shell="sleep 6 && echo slept", python="print(1)"),
        turn("done"), approval={"tools": ["python"]}, sandbox={"idle_release_seconds": 1},
    ), task_queue=worker)
    await wait_for(lambda: waiting_for(temporal_client, handle.id), what="the approval")
    await asyncio.sleep(3)  # past the idle release's wait, while `sleep 6` runs

    assert (await tether.get_status(temporal_client, handle.id)).sandbox not in (None, "released")
    assert labelled(handle.id)
    await wait_for(lambda: not labelled(handle.id), timeout=60, what="the release once the call ended")
    await tether.cancel(temporal_client, handle.id, "done looking")
