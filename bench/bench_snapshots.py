"""Workspace snapshots and idle release, each figure beside a baseline from the same run:

- a snapshot of a workspace of 100 MiB in 1,000 files (every file read, hashed and stored
  by digest, the manifest stored), against the engine's own floor for the same bytes: a
  `docker exec tar -c` of the same workspace read to the end on the host;
- a restore of that snapshot into a fresh sandbox (every file read back from the store and
  streamed in), against a `docker exec tar -x` of the same tree into a fresh sandbox;
- `BENCH_WAITING` runs (200) waiting for approval past a 1 s idle release on one worker: the
  containers they hold (goal: none) against one each without release, and the worker's
  resident memory.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

from tether import client as tether
from tether.activities.snapshots import SnapshotActivities, restore_snapshot
from tether.contracts import SandboxSpec
from tether.contracts.snapshots import SnapshotInput
from tether.sandbox.engine import connect_engine
from tether.sandbox.hardening import SANDBOX_UID
from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER, SandboxManager
from tether.store import LocalContentStore

from bench.bench_concurrency import peak_rss_mb
from bench.local_stack import local_stack
from bench.report import Report

FILES = 1000
FILE_BYTES = 100 * 1024
WAITING = int(os.environ.get("BENCH_WAITING", "200"))
SPEC = SandboxSpec(memory_mb=1024, disk_mb=256)


def workspace_tar() -> bytes:
    """1,000 files of 100 KiB of random bytes in 10 directories: what both ways move."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for n in range(FILES):
            info = tarfile.TarInfo(f"d{n % 10}/f{n}")
            info.size, info.uid, info.gid = FILE_BYTES, SANDBOX_UID, SANDBOX_UID
            tar.addfile(info, io.BytesIO(os.urandom(FILE_BYTES)))
    return buffer.getvalue()


def exec_tar(sandboxes: SandboxManager, container_id: str, command: list[str], stdin: bytes | None) -> None:
    """`docker exec -i CONTAINER tar ...` as the tools' user: stdin written, stdout read to the end."""
    api = sandboxes.engine.api
    exec_id = api.exec_create(container_id, command, stdin=stdin is not None, stdout=True, stderr=True,
                              user=f"{SANDBOX_UID}:{SANDBOX_UID}")["Id"]
    raw = api.exec_start(exec_id, socket=True)
    sock = getattr(raw, "_sock", raw)
    if stdin is not None:
        sock.sendall(stdin)
        sock.shutdown(1)
    while sock.recv(1 << 20):
        pass
    sock.close()
    code = api.exec_inspect(exec_id)["ExitCode"]
    assert code == 0, f"{command} exited with {code}"


async def timed(work: Any) -> float:
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def snapshot_and_restore(report: Report) -> None:
    sandboxes = SandboxManager(await asyncio.to_thread(connect_engine))
    worker = f"bench-{uuid.uuid4().hex[:8]}"
    store_dir = Path(f"/tmp/tether-bench-snapshots-{worker}")
    blobs = LocalContentStore(store_dir)

    def sandbox() -> str:
        return str(sandboxes.create(SPEC, {LABEL_MANAGED: "1", LABEL_WORKER: worker},
                                    name=f"tether-bench-{uuid.uuid4().hex[:12]}").id)

    try:
        tree = workspace_tar()
        source = await asyncio.to_thread(sandbox)
        await asyncio.to_thread(exec_tar, sandboxes, source, ["tar", "-x", "-C", "/workspace"], tree)
        tar_out = await timed(asyncio.to_thread(
            exec_tar, sandboxes, source, ["tar", "-c", "-C", "/workspace", "."], None))
        taken = SnapshotActivities(sandboxes=sandboxes, blobs=blobs).snapshot(
            SnapshotInput(workflow_id="bench", container_id=source, disk_mb=SPEC.disk_mb))
        started = time.perf_counter()
        output = await taken
        snapshot_s = time.perf_counter() - started
        baseline_target, target = await asyncio.gather(asyncio.to_thread(sandbox), asyncio.to_thread(sandbox))
        tar_in = await timed(asyncio.to_thread(
            exec_tar, sandboxes, baseline_target, ["tar", "-x", "-C", "/workspace"], tree))
        restore_s = await timed(
            restore_snapshot(blobs, sandboxes, target, output.manifest, disk_mb=SPEC.disk_mb))
        again = await SnapshotActivities(sandboxes=sandboxes, blobs=blobs).snapshot(
            SnapshotInput(workflow_id="bench", container_id=target, disk_mb=SPEC.disk_mb))
        assert again.manifest == output.manifest, "the restored workspace is not the one snapshot"
    finally:
        for leftover in await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: worker}):
            await asyncio.to_thread(sandboxes.remove, leftover.id)
        sandboxes.engine.close()
        await asyncio.to_thread(shutil.rmtree, store_dir, True)
    size = f"{output.bytes / (1 << 20):.0f} MiB in {output.files} files"
    report.figure(f"snapshot of {size}", snapshot_s, "s", goal="≤ 2 s", met=snapshot_s <= 2,
                  baseline_name="docker exec tar -c of the same workspace", baseline=tar_out)
    report.figure(f"restore of {size} into a fresh sandbox", restore_s, "s", goal="≤ 2 s",
                  met=restore_s <= 2, baseline_name="docker exec tar -x of the same tree", baseline=tar_in)
    report.figure("snapshot against the engine's floor", snapshot_s, "s", at_most=4.0,
                  baseline_name="docker exec tar -c", baseline=tar_out)
    report.figure("restore against the engine's floor", restore_s, "s", at_most=4.0,
                  baseline_name="docker exec tar -x", baseline=tar_in)


def waiting_run(n: int) -> dict[str, Any]:
    return {"task": f"waiting {n}", "tools": ["shell", "python"],
            "model": {"provider": "scripted", "script": {"turns": [
                {"tool_calls": [{"name": "shell", "arguments": {"command": f"echo {n} > mine"}}]},
                {"tool_calls": [{"name": "python", "arguments": {"code": "print(1)"}}]},
                {"text": "done"}]}},
            "approval": {"tools": ["python"]},
            "sandbox": {"idle_release_seconds": 1},
            "budget": {"max_seconds": None}}


async def waiting_runs(report: Report) -> None:
    async with local_stack("snapshots") as stack:
        sandboxes = stack.host.sandboxes.sandboxes
        worker = stack.plugin.settings.worker_id
        handles = await asyncio.gather(*(
            tether.start_run(stack.client, waiting_run(n), task_queue=stack.task_queue)
            for n in range(WAITING)))

        async def held() -> int:
            return len(await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: worker}))

        async def waiting() -> int:
            # From visibility, not the runs' status queries: 200 queries at once would each
            # need a workflow task of a worker busy releasing sandboxes.
            counted = await stack.client.count_workflows('TetherStatus = "awaiting_approval"')
            return counted.count

        started, peak = time.monotonic(), 0
        while time.monotonic() - started < 900:
            now = await held()
            peak = max(peak, now)
            if now == 0 and await waiting() == WAITING:
                break
            await asyncio.sleep(1)
        seconds = time.monotonic() - started
        await asyncio.sleep(5)  # still none a while later: no run took a sandbox back
        containers, done, rss = await held(), await waiting(), peak_rss_mb()
        statuses = [await tether.get_status(stack.client, handle.id) for handle in handles[:10]]
        for handle in handles:
            await tether.cancel(stack.client, handle.id, "the benchmark is done")
        await asyncio.gather(*(handle.result() for handle in handles), return_exceptions=True)
    report.console.print(f"  {done} of {WAITING} runs wait for approval; {containers} containers after"
                         f" {seconds:,.0f} s (peak {peak}); the first 10 show sandbox"
                         f" {sorted({s.sandbox or 'none' for s in statuses})}")
    report.figure(f"containers held by {WAITING} runs waiting for approval", containers, "containers",
                  goal="none", met=containers == 0 and done == WAITING,
                  baseline_name="one each without idle release", baseline=WAITING)
    report.figure(f"worker peak memory (RSS) with {WAITING} waiting runs", rss, "MB")


async def run(report: Report) -> None:
    await snapshot_and_restore(report)
    await waiting_runs(report)
