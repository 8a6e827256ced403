"""Workspace snapshots in the content store: each file's bytes stored by digest as the
workspace's entries stream past, the manifest built from them and stored too; and a stored
manifest read back, checked, for a restore.

What streams past comes from a hostile place (a sandbox's workspace): each name is checked as
a name inside the workspace again, a link is kept only when its target stays inside, and a
file's digest is the one the store makes of the bytes read, never one the sandbox gave.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

from tether.contracts.files import DIGEST_PREFIX, MAX_SKIPPED_REPORTED, digest_of, name_problem
from tether.contracts.snapshots import SkippedEntry, SnapshotEntry, SnapshotManifest
from tether.store.content import ContentStore

WORKSPACE = "/workspace"
KEPT_MODE_BITS = 0o0755
"""What of an entry's mode a restore can make: the way into a sandbox never makes setuid,
setgid or sticky entries nor ones others may write, so a manifest records modes without them,
and a restored workspace snapshots to the same digest."""
READ_BYTES = 1 << 20
STORE_THREADS = 4
MAX_IN_FLIGHT_BYTES = 64 << 20
"""Bytes read from the stream and not yet stored: what a snapshot holds in memory at most
(besides one file bigger than that, held whole while it is stored)."""


class SnapshotRefused(ValueError):
    """A manifest that can't be restored: a name or a link that would leave the workspace."""


class ManifestBuilder:
    """Collects a workspace's entries as they stream past, storing files' bytes by digest.

    Files are stored on threads of its own while the stream goes on (hashing and writing
    release the GIL), at most `MAX_IN_FLIGHT_BYTES` of them at once; `manifest` waits for
    them. Use it as a context manager, so its threads end however the stream does."""

    def __init__(self, blobs: ContentStore) -> None:
        self.blobs = blobs
        self.entries: dict[str, SnapshotEntry] = {}
        self.skipped: list[SkippedEntry] = []
        self._storing: dict[str, Future[str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=STORE_THREADS, thread_name_prefix="snapshot-store")
        self._room = threading.BoundedSemaphore(MAX_IN_FLIGHT_BYTES // READ_BYTES)

    def __enter__(self) -> ManifestBuilder:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add_file(self, path: str, mode: int, data: IO[bytes]) -> None:
        if not self._named(path):
            return
        chunks = []
        while chunk := data.read(READ_BYTES):
            chunks.append(chunk)
        content = b"".join(chunks)
        units = max(1, min(len(content) // READ_BYTES, MAX_IN_FLIGHT_BYTES // READ_BYTES))
        for _ in range(units):
            self._room.acquire()
        self._storing[path] = self._pool.submit(self._store, content, units)
        self.entries[path] = SnapshotEntry(path=path, kind="file", mode=mode & KEPT_MODE_BITS,
                                           size=len(content))

    def _store(self, content: bytes, units: int) -> str:
        try:
            return DIGEST_PREFIX + self.blobs.put(content)
        finally:
            for _ in range(units):
                self._room.release()

    def add_dir(self, path: str, mode: int) -> None:
        if self._named(path):
            self.entries[path] = SnapshotEntry(path=path, kind="dir", mode=mode & KEPT_MODE_BITS)

    def add_link(self, path: str, target: str) -> None:
        if not self._named(path):
            return
        problem = link_problem(path, target)
        if problem is not None:
            self.skip(path, problem)
            return
        self.entries[path] = SnapshotEntry(path=path, kind="symlink", mode=0o777, target=target)

    def skip(self, path: str, reason: str) -> None:
        self.entries.pop(path, None)
        self._storing.pop(path, None)
        if len(self.skipped) < MAX_SKIPPED_REPORTED:
            self.skipped.append(SkippedEntry(path=_shown(path), reason=_shown(reason)))

    def manifest(self) -> SnapshotManifest:
        """The manifest, once every file kept is stored (a store error is raised here)."""
        for path, storing in self._storing.items():
            self.entries[path].sha256 = storing.result()
        return SnapshotManifest(entries=sorted(self.entries.values(), key=lambda e: e.path))

    def _named(self, path: str) -> bool:
        problem = name_problem(path, what="name")
        if problem is not None:
            self.skip(path, problem)
        return problem is None


def store_manifest(blobs: ContentStore, manifest: SnapshotManifest) -> str:
    """Stores the manifest; returns its reference, `sha256:<hex>`."""
    return DIGEST_PREFIX + blobs.put(manifest.canonical())


def load_manifest(blobs: ContentStore, reference: str) -> SnapshotManifest:
    """The manifest a reference names (checked against its digest by the store), refused if
    any entry would land outside the workspace: a store anyone else can write is not trusted."""
    manifest = SnapshotManifest.model_validate_json(blobs.get(digest_of(reference)))
    for entry in manifest.entries:
        problem = name_problem(entry.path, what="name")
        if problem is None and entry.kind == "symlink":
            problem = link_problem(entry.path, entry.target or "")
        if problem is None and entry.kind == "file" and not (entry.sha256 or "").startswith(DIGEST_PREFIX):
            problem = f"file {entry.path!r} has no digest"
        if problem is not None:
            raise SnapshotRefused(f"snapshot {reference[:19]} can't be restored: {problem}")
    return manifest


def file_chunks(blobs: ContentStore, reference: str) -> Iterator[bytes]:
    """A stored file's bytes, read only when iterated (a restore reads each file in its turn)."""
    yield blobs.get(digest_of(reference))


def link_problem(path: str, target: str) -> str | None:
    """Why a link can't be kept: its target leaves the workspace, or names it from outside
    (an absolute target: a restore writes only relative ones)."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if target and not target.startswith("/") and resolved != ".." and not resolved.startswith("../"):
        return None
    return f"symbolic link to {_shown(target)!r}, outside the workspace: not kept"


def _shown(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")[:1024]
