"""A run's files placed (`place_files`) and its artifacts collected (`collect_artifacts`),
under runc and gVisor: the store's bytes are checked against their digest as they stream
into the sandbox, and the sandbox's own digest of what it wrote against the same reference;
what comes out is stored under the digest this side computed."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from tether.activities.artifacts import ArtifactActivities, place_files
from tether.contracts import SandboxSpec
from tether.contracts.files import CollectInput
from tether.store import LocalContentStore

from tests.helpers import sandboxes
from tests.sandbox.attacks import RUNTIMES, require
from tests.sandbox.direct import call, direct_labels


@pytest.fixture(params=RUNTIMES)
async def under_each_runtime(request: pytest.FixtureRequest, docker_engine) -> AsyncIterator[str]:
    spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=16, runtime=require(request.param))
    container = await asyncio.to_thread(
        sandboxes().create, spec, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    yield container.id
    await asyncio.to_thread(sandboxes().remove, container.id)


async def test_files_are_placed_with_the_digest_the_store_names_them_by(under_each_runtime: str,
                                                                        tmp_path: Path):
    store = LocalContentStore(tmp_path)
    digest = store.put(b"name,value\n")
    await place_files(store, sandboxes(), under_each_runtime, {"in/data.csv": f"sha256:{digest}"})
    # Python's hashing, not coreutils': gVisor's kernel answers their statx with EINVAL.
    found = await call(under_each_runtime, "import hashlib\nprint(hashlib.sha256("
                                           "open('in/data.csv', 'rb').read()).hexdigest())", tool="python")
    assert found.stdout.strip() == digest


async def test_an_artifact_is_collected_into_the_store_under_its_digest(under_each_runtime: str,
                                                                        tmp_path: Path):
    made = await call(under_each_runtime, "import os\nos.makedirs('out')\n"
                                          "open('out/r.bin', 'wb').write(bytes(range(256)) * 4096)",
                      tool="python")
    assert made.exit_code == 0, made.stderr
    store = LocalContentStore(tmp_path)
    collect = ArtifactActivities(blobs=store, sandboxes=sandboxes())
    got = await ActivityEnvironment().run(collect.collect, CollectInput(
        workflow_id="direct", container_id=under_each_runtime, globs=["out/*"]))
    digest = hashlib.sha256(bytes(range(256)) * 4096).hexdigest()
    assert [(a.path, a.size, a.sha256) for a in got.artifacts] == [("out/r.bin", 1 << 20, digest)]
    assert store.get(digest) == bytes(range(256)) * 4096


async def test_a_blob_altered_in_the_store_is_refused_as_it_is_placed(sandbox: str, tmp_path: Path):
    store = LocalContentStore(tmp_path)
    digest = store.put(b"the real bytes")
    (tmp_path / digest[:2] / digest[2:]).write_bytes(b"other bytes!!!")
    with pytest.raises(ApplicationError, match=f"blob {digest[:12]} .* does not hold") as refused:
        await place_files(store, sandboxes(), sandbox, {"data.txt": f"sha256:{digest}"})
    assert refused.value.type == "StoreCorrupt" and refused.value.non_retryable
    assert (await call(sandbox, "ls -A")).stdout == ""
