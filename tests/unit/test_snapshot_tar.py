"""store/snapshots.py: a workspace's tar becomes a manifest and blobs in the content store, and
a manifest becomes a tar that recreates the same workspace. A local file store under a
temporary directory and tar streams made by Python's own tarfile; no Temporal, no Docker."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from tether.store.content import LocalContentStore
from tether.store.snapshots import (
    SnapshotRefused,
    load_manifest,
    snapshot_from_tar,
    store_manifest,
    tar_of,
)

MiB = 1 << 20


def workspace(root: Path) -> Path:
    """A tree with what a snapshot must keep exactly: modes, an empty directory, links inside."""
    root.mkdir()
    (root / "src").mkdir(mode=0o750)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret.txt").write_text("only me\n")
    (root / "secret.txt").chmod(0o600)
    (root / "empty").mkdir()
    (root / "copy.py").write_text("print('hi')\n")
    os.symlink("src/main.py", root / "link.py")
    os.symlink("/workspace/src", root / "absolute-in")
    return root


def tar_stream(root: Path) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(root, arcname=".")
    buffer.seek(0)
    return buffer


def test_a_snapshot_keeps_modes_links_inside_and_empty_directories(tmp_path: Path) -> None:
    blobs = LocalContentStore(tmp_path / "store")
    manifest, skipped = snapshot_from_tar(blobs, tar_stream(workspace(tmp_path / "w")), max_bytes=MiB)
    by_path = {entry.path: entry for entry in manifest.entries}
    assert skipped == []
    assert by_path["run.sh"].mode == 0o755 and by_path["secret.txt"].mode == 0o600
    assert by_path["src"].kind == "dir" and by_path["src"].mode == 0o750
    assert by_path["empty"].kind == "dir"
    assert by_path["link.py"].kind == "symlink" and by_path["link.py"].target == "src/main.py"
    assert by_path["absolute-in"].target == "/workspace/src"
    assert by_path["copy.py"].sha256 == by_path["src/main.py"].sha256


def test_links_that_lead_out_of_the_workspace_and_fifos_are_skipped_with_why(tmp_path: Path) -> None:
    root = workspace(tmp_path / "w")
    os.symlink("/etc/passwd", root / "passwd")
    os.symlink("../../outside", root / "src" / "up")
    os.mkfifo(root / "pipe")
    manifest, skipped = snapshot_from_tar(LocalContentStore(tmp_path / "store"), tar_stream(root),
                                          max_bytes=MiB)
    reasons = {entry.path: entry.reason for entry in skipped}
    assert set(reasons) == {"passwd", "src/up", "pipe"}
    assert "outside the workspace" in reasons["passwd"] and "fifo" in reasons["pipe"]
    assert {"passwd", "src/up", "pipe"}.isdisjoint(entry.path for entry in manifest.entries)


def test_a_restored_tree_snapshots_to_the_same_manifest_digest(tmp_path: Path) -> None:
    blobs = LocalContentStore(tmp_path / "store")
    manifest, _ = snapshot_from_tar(blobs, tar_stream(workspace(tmp_path / "w")), max_bytes=MiB)
    reference = store_manifest(blobs, load_manifest(blobs, store_manifest(blobs, manifest)))
    restored = tmp_path / "restored"
    restored.mkdir()
    with tarfile.open(fileobj=io.BytesIO(b"".join(tar_of(blobs, manifest))), mode="r|") as tar:
        tar.extractall(restored, filter="tar")
    again, _ = snapshot_from_tar(blobs, tar_stream(restored), max_bytes=MiB)
    assert store_manifest(blobs, again) == reference
    assert (restored / "link.py").read_text() == "print('hi')\n"


def test_unchanged_files_are_stored_once_across_snapshots(tmp_path: Path) -> None:
    blobs = LocalContentStore(tmp_path / "store")
    root = workspace(tmp_path / "w")
    snapshot_from_tar(blobs, tar_stream(root), max_bytes=MiB)
    before = sorted(p for p in (tmp_path / "store").rglob("*") if p.is_file())
    (root / "new.txt").write_text("new\n")
    snapshot_from_tar(blobs, tar_stream(root), max_bytes=MiB)
    after = sorted(p for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert len(after) == len(before) + 1


def test_a_workspace_over_its_disk_is_refused_naming_the_limit(tmp_path: Path) -> None:
    root = workspace(tmp_path / "w")
    (root / "big.bin").write_bytes(b"x" * (2 * MiB))
    with pytest.raises(SnapshotRefused, match=f"over {MiB} bytes"):
        snapshot_from_tar(LocalContentStore(tmp_path / "store"), tar_stream(root), max_bytes=MiB)


def test_a_manifest_whose_link_leads_out_is_not_restored(tmp_path: Path) -> None:
    blobs = LocalContentStore(tmp_path / "store")
    manifest, _ = snapshot_from_tar(blobs, tar_stream(workspace(tmp_path / "w")), max_bytes=MiB)
    link = next(e for e in manifest.entries if e.path == "link.py")
    link.target = "../../etc/shadow"
    with pytest.raises(SnapshotRefused, match="outside the workspace"):
        b"".join(tar_of(blobs, manifest))
