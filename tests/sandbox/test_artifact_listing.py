"""Listing a hostile workspace's artifacts is bounded: the files and skipped entries the
executor lists, and the entries it walks to find them. What is cut is counted or said."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.testing import ActivityEnvironment
from tether.activities.artifacts import ArtifactActivities
from tether.contracts import SandboxSpec
from tether.contracts.files import MAX_FILES, MAX_SKIPPED_REPORTED, MAX_WALKED_ENTRIES, CollectInput
from tether.sandbox.workspace import list_artifacts

from tests.helpers import conversations, sandboxes
from tests.sandbox.direct import call, direct_labels


async def make(sandbox: str, code: str) -> None:
    made = await call(sandbox, code, tool="python", timeout=60)
    assert made.exit_code == 0, made.stderr


async def test_more_matching_files_than_the_cap_lists_the_cap_and_counts_the_rest(sandbox: str):
    await make(sandbox, f"for n in range({MAX_FILES + 5}): open(f'out-{{n:05}}.txt', 'w').close()")
    listing = list_artifacts(sandboxes(), sandbox, ["*.txt"])
    assert len(listing.files) == MAX_FILES
    assert listing.files_over == 5 and listing.cut is None


async def test_more_skipped_entries_than_reported_are_counted_not_listed(sandbox: str):
    await make(sandbox, f"import os\nfor n in range({MAX_SKIPPED_REPORTED + 7}):\n"
                        "    os.symlink('/etc/passwd', f'l-{n}.txt')")
    listing = list_artifacts(sandboxes(), sandbox, ["*.txt"])
    assert len(listing.skipped) == MAX_SKIPPED_REPORTED
    assert listing.skipped_over == 7 and listing.files == []


async def test_a_walk_past_its_entry_cap_stops_and_the_result_says_where(sandbox: str):
    await make(sandbox, "import os\nos.makedirs('deep/er')\n"
                        "for n in range(50): open(f'deep/er/{n}', 'w').close()")
    listing = list_artifacts(sandboxes(), sandbox, ["**"], max_walked=20)
    assert len(listing.files) == 18  # 20 entries walked: two directories, 18 files
    assert listing.cut is not None
    where, reason = listing.cut
    assert where == "deep/er" and "after 20 entries" in reason


@pytest.fixture
async def big_workspace(docker_engine) -> AsyncIterator[str]:
    """Room for more files than a walk looks at (a workspace holds 128 files per MiB)."""
    spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=1024)
    container = await asyncio.to_thread(
        sandboxes().create, spec, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    yield container.id
    await asyncio.to_thread(sandboxes().remove, container.id)


async def test_a_collection_cut_short_says_so_in_the_runs_artifacts(big_workspace: str):
    await make(big_workspace, f"import os\nos.makedirs('many')\n"
                              f"for n in range({MAX_WALKED_ENTRIES + 10}): open(f'many/{{n}}', 'w').close()")
    collecting = ArtifactActivities(blobs=conversations().blobs, sandboxes=sandboxes())
    artifacts = await ActivityEnvironment().run(collecting.collect, CollectInput(
        workflow_id=f"run-{uuid.uuid4().hex[:8]}", container_id=big_workspace, globs=["**"]))
    [cut] = [s for s in artifacts.skipped if "the listing was cut" in s.reason]
    assert cut.path == "many" and f"after {MAX_WALKED_ENTRIES} entries" in cut.reason
    assert len(artifacts.artifacts) == MAX_FILES
