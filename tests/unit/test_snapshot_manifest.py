"""store/snapshots.py: a workspace's entries, as they stream past, become a manifest and blobs
in the content store, and a stored manifest is read back only when every entry stays inside
the workspace. A local file store under a temporary directory, entries read from a real
directory; no Temporal, no Docker (tests/test_idle_release.py goes through sandboxes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tether.contracts.snapshots import SnapshotEntry, SnapshotManifest
from tether.store.content import LocalContentStore
from tether.store.snapshots import ManifestBuilder, SnapshotRefused, load_manifest, store_manifest


def workspace(root: Path) -> Path:
    root.mkdir()
    (root / "src").mkdir(mode=0o750)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "secret.txt").write_text("only me\n")
    (root / "secret.txt").chmod(0o600)
    (root / "open.txt").write_text("anyone writes\n")
    (root / "open.txt").chmod(0o4777)
    (root / "empty").mkdir()
    (root / "copy.py").write_text("print('hi')\n")
    os.symlink("src/main.py", root / "link.py")
    return root


def built(blobs: LocalContentStore, root: Path) -> ManifestBuilder:
    """What the snapshot activity does with each entry `sandbox/transfer.stream_out` hands it."""
    with ManifestBuilder(blobs) as builder:
        walk(builder, root)
        builder.manifest()  # every file stored
    return builder


def walk(builder: ManifestBuilder, root: Path) -> None:
    for directory, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                builder.add_link(relative, os.readlink(path))
            elif path.is_dir():
                builder.add_dir(relative, path.stat().st_mode)
            else:
                with path.open("rb") as data:
                    builder.add_file(relative, path.stat().st_mode, data)


def test_a_manifest_keeps_modes_links_inside_and_empty_directories(tmp_path: Path) -> None:
    builder = built(LocalContentStore(tmp_path / "store"), workspace(tmp_path / "w"))
    by_path = {entry.path: entry for entry in builder.manifest().entries}
    assert builder.skipped == []
    assert by_path["run.sh"].mode == 0o755 and by_path["secret.txt"].mode == 0o600
    assert by_path["src"].kind == "dir" and by_path["src"].mode == 0o750
    assert by_path["empty"].kind == "dir"
    assert by_path["link.py"].kind == "symlink" and by_path["link.py"].target == "src/main.py"
    assert by_path["copy.py"].sha256 == by_path["src/main.py"].sha256


def test_modes_a_restore_cannot_make_are_not_recorded(tmp_path: Path) -> None:
    builder = built(LocalContentStore(tmp_path / "store"), workspace(tmp_path / "w"))
    [open_file] = [e for e in builder.manifest().entries if e.path == "open.txt"]
    assert open_file.mode == 0o755


def test_links_that_lead_out_of_the_workspace_are_skipped_with_why(tmp_path: Path) -> None:
    root = workspace(tmp_path / "w")
    os.symlink("/etc/passwd", root / "passwd")
    os.symlink("../../outside", root / "src" / "up")
    builder = built(LocalContentStore(tmp_path / "store"), root)
    reasons = {entry.path: entry.reason for entry in builder.skipped}
    assert set(reasons) == {"passwd", "src/up"}
    assert "outside the workspace" in reasons["passwd"]
    assert {"passwd", "src/up"}.isdisjoint(entry.path for entry in builder.manifest().entries)


def test_the_same_tree_has_the_same_manifest_digest_whatever_the_order(tmp_path: Path) -> None:
    blobs = LocalContentStore(tmp_path / "store")
    manifest = built(blobs, workspace(tmp_path / "w")).manifest()
    reversed_order = SnapshotManifest(entries=list(reversed(manifest.entries)))
    reference = store_manifest(blobs, manifest)
    assert store_manifest(blobs, reversed_order) == reference
    assert load_manifest(blobs, reference) == manifest


def test_unchanged_files_are_stored_once_across_snapshots(tmp_path: Path) -> None:
    blobs = LocalContentStore(tmp_path / "store")
    root = workspace(tmp_path / "w")
    built(blobs, root)
    before = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    (root / "new.txt").write_text("new\n")
    built(blobs, root)
    after = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert len(after) == len(before) + 1


def test_a_stored_manifest_whose_link_leads_out_is_not_restored(tmp_path: Path) -> None:
    blobs = LocalContentStore(tmp_path / "store")
    hostile = SnapshotManifest(entries=[
        SnapshotEntry(path="escape", kind="symlink", mode=0o777, target="../../etc/shadow")])
    with pytest.raises(SnapshotRefused, match="outside the workspace"):
        load_manifest(blobs, store_manifest(blobs, hostile))
