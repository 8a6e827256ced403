"""Files at disk speed: a run's 64 MiB file placed into a sandbox and a 64 MiB artifact
collected from one, each against `docker cp` of the same file into (or out of) a container
on the same engine, in the same run, interleaved so both see the same machine.

Placing is the worker's own path (`place_files`: the store's blob streamed as a tar into the
sandbox's /workspace, digests checked on both ends); `docker cp` writes to a plain
container's filesystem, since the engine's archive API can't reach a sandbox's workspace.
Before tar streams, files crossed the executor's JSON channel at about 2 MB/s (16 MiB in
7.6 s, issue 21).
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.testing import ActivityEnvironment
from tether.activities.artifacts import ArtifactActivities, place_files
from tether.contracts import SandboxSpec
from tether.contracts.files import CollectInput
from tether.sandbox.engine import connect_engine
from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER, SandboxManager
from tether.store import LocalContentStore
from tether.store.streams import put_stream

from bench.report import Report

SIZE = 64 << 20
ROUNDS = 7
IMAGE = "tether-sandbox:latest"


def docker_cp(source: str, target: str) -> float:
    started = time.perf_counter()
    subprocess.run(["docker", "cp", source, target], check=True, capture_output=True)
    return time.perf_counter() - started


async def run(report: Report) -> None:
    sandboxes = SandboxManager(connect_engine())
    worker = f"bench-files-{uuid.uuid4().hex[:8]}"
    labels = {LABEL_MANAGED: "1", LABEL_WORKER: worker}
    with tempfile.TemporaryDirectory(prefix="tether-bench-files-") as scratch:
        root = Path(scratch)
        source = root / "big.bin"
        with source.open("wb") as f:
            for _ in range(SIZE >> 20):
                f.write(hashlib.sha512(f.tell().to_bytes(8, "big")).digest() * (1 << 14))
        blobs = LocalContentStore(root / "store")
        with source.open("rb") as f:
            reference = "sha256:" + put_stream(blobs, f)
        sandbox = await asyncio.to_thread(sandboxes.create, SandboxSpec(), labels,
                                          name=f"tether-bench-{uuid.uuid4().hex[:12]}")
        plain = await asyncio.to_thread(
            sandboxes.engine.containers.run, IMAGE, entrypoint=["sleep", "infinity"], detach=True,
            network_mode="none", labels=labels, name=f"tether-bench-{uuid.uuid4().hex[:12]}")
        try:
            placing, copying_in, collecting, copying_out = [], [], [], []
            write = ["python3", "-c",
                     f"open('/workspace/out.bin', 'wb').write(open('/dev/urandom', 'rb').read({SIZE}))"]
            await asyncio.to_thread(sandbox.exec_run, write, user="10001")
            collect = ArtifactActivities(blobs=blobs, sandboxes=sandboxes)
            request = CollectInput(workflow_id=worker, container_id=sandbox.id, globs=["out.bin"])
            for _ in range(ROUNDS):
                started = time.perf_counter()
                await place_files(blobs, sandboxes, sandbox.id, {"big.bin": reference})
                placing.append(time.perf_counter() - started)
                copying_in.append(await asyncio.to_thread(docker_cp, str(source), f"{plain.id}:/tmp/big.bin"))
                started = time.perf_counter()
                collected = await ActivityEnvironment().run(collect.collect, request)
                collecting.append(time.perf_counter() - started)
                assert [a.size for a in collected.artifacts] == [SIZE], collected
                copying_out.append(await asyncio.to_thread(
                    docker_cp, f"{plain.id}:/tmp/big.bin", str(root / "out.bin")))
        finally:
            for container_id in (sandbox.id, plain.id):
                await asyncio.to_thread(sandboxes.remove, container_id)
    report.figure("place a 64 MiB file into a sandbox (p50)", statistics.median(placing) * 1000, "ms",
                  baseline_name="docker cp into a container",
                  baseline=statistics.median(copying_in) * 1000, at_most=2.0)
    # No goal of its own (issue 21 sets one for placing): shown beside the same baseline.
    report.figure("collect a 64 MiB artifact (p50)", statistics.median(collecting) * 1000, "ms",
                  baseline_name="docker cp out of a container",
                  baseline=statistics.median(copying_out) * 1000)
