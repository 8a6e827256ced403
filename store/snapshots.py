"""Workspace snapshots in the content store: a tar stream of a workspace in, its manifest and
blobs stored; a manifest out, as a tar stream that recreates exactly that workspace.

The tar comes from a hostile place (a sandbox's workspace), so nothing in it is trusted: each
name is checked as a name inside the workspace, a link is kept only when its target stays
inside, devices and fifos are skipped, the bytes read are bounded, and every file's digest is
made here from the bytes read, never taken from the tar.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterator
from typing import IO

from tether.contracts.files import (
    DIGEST_PREFIX,
    MAX_SKIPPED_REPORTED,
    MAX_WALKED_ENTRIES,
    digest_of,
    name_problem,
)
from tether.contracts.snapshots import SkippedEntry, SnapshotEntry, SnapshotManifest
from tether.store.content import ContentStore

WORKSPACE = "/workspace"
TOOLS_UID = 10001
"""The tools' user in the sandbox: every restored entry belongs to it."""


class SnapshotRefused(ValueError):
    """A workspace that can't be snapshot whole (too big, too many entries) or a manifest
    that can't be restored (a name or a link that would leave the workspace)."""


def snapshot_from_tar(blobs: ContentStore, stream: IO[bytes], *, max_bytes: int,
                      max_entries: int = MAX_WALKED_ENTRIES) -> tuple[SnapshotManifest, list[SkippedEntry]]:
    """Reads a tar of the workspace (names relative to it, `./` or not) as a stream, storing
    each file's bytes by digest; returns the manifest (not yet stored) and what was skipped."""
    entries: dict[str, SnapshotEntry] = {}
    skipped: list[SkippedEntry] = []
    total = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = _relative(member.name)
            if path is None:
                continue  # the workspace itself
            if len(entries) >= max_entries:
                raise SnapshotRefused(f"the workspace holds over {max_entries} entries: too many to snapshot")
            problem = name_problem(path, what="name")
            reason = problem or _skip_reason(path, member)
            if reason is not None:
                if len(skipped) < MAX_SKIPPED_REPORTED:
                    skipped.append(SkippedEntry(path=_shown(path), reason=reason))
                continue
            mode = member.mode & 0o7777
            if member.isdir():
                entries[path] = SnapshotEntry(path=path, kind="dir", mode=mode)
            elif member.issym():
                entries[path] = SnapshotEntry(path=path, kind="symlink", mode=0o777, target=member.linkname)
            elif member.islnk():
                # A second name of a file already read: the same bytes, stored once.
                first = entries.get(_relative(member.linkname) or "")
                if first is None or first.kind != "file":
                    skipped.append(SkippedEntry(path=_shown(path), reason="a hard link to nothing kept"))
                    continue
                entries[path] = first.model_copy(update={"path": path, "mode": mode})
            else:
                total += member.size
                if total > max_bytes:
                    raise SnapshotRefused(f"the workspace holds over {max_bytes} bytes of files: more "
                                          "than its disk, so the snapshot stopped")
                reader = tar.extractfile(member)
                data = reader.read() if reader is not None else b""
                if len(data) != member.size:
                    raise SnapshotRefused(f"{_shown(path)!r} ended after {len(data)} of {member.size} bytes")
                digest = blobs.put(data)
                entries[path] = SnapshotEntry(path=path, kind="file", mode=mode, size=len(data),
                                              sha256=DIGEST_PREFIX + digest)
    return SnapshotManifest(entries=sorted(entries.values(), key=lambda e: e.path)), skipped


def store_manifest(blobs: ContentStore, manifest: SnapshotManifest) -> str:
    """Stores the manifest; returns its reference, `sha256:<hex>`."""
    return DIGEST_PREFIX + blobs.put(manifest.canonical())


def load_manifest(blobs: ContentStore, reference: str) -> SnapshotManifest:
    """The manifest a reference names, checked against its digest by the store."""
    return SnapshotManifest.model_validate_json(blobs.get(digest_of(reference)))


def tar_of(blobs: ContentStore, manifest: SnapshotManifest) -> Iterator[bytes]:
    """The manifest as a tar (names relative to the workspace, every entry the tools' user's),
    in chunks: a file's bytes are read from the store only when its turn comes."""
    for entry in manifest.entries:
        problem = name_problem(entry.path, what="name")
        if problem is None and entry.kind == "symlink":
            problem = _link_problem(entry.path, entry.target or "")
        if problem is not None:
            raise SnapshotRefused(f"the snapshot can't be restored: {problem}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in manifest.entries:
            info = tarfile.TarInfo(entry.path)
            info.mode, info.uid, info.gid = entry.mode, TOOLS_UID, TOOLS_UID
            data = b""
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target or ""
            else:
                data = blobs.get(digest_of(entry.sha256 or ""))
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
            if buffer.tell():
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _relative(name: str) -> str | None:
    """A tar member's name relative to the workspace; None for the workspace itself."""
    path = name.removeprefix("./").rstrip("/")
    while path.startswith("./"):
        path = path[2:]
    return None if path in ("", ".") else path


def _skip_reason(path: str, member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return _link_problem(path, member.linkname)
    if member.isdir() or member.isreg() or member.islnk():
        return None
    if member.isfifo():
        return "a fifo: not kept"
    if member.ischr() or member.isblk():
        return "a device file: not kept"
    return "not a file, a directory or a link: not kept"


def _link_problem(path: str, target: str) -> str | None:
    """Why a link can't be kept: its target, read as the tools would, leaves the workspace."""
    if target.startswith("/"):
        inside = posixpath.normpath(target)
        if inside == WORKSPACE or inside.startswith(WORKSPACE + "/"):
            return None
    else:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if target and resolved != ".." and not resolved.startswith("../"):
            return None
    return f"symbolic link to {_shown(target)!r}, outside the workspace: not kept"


def _shown(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")[:1024]
