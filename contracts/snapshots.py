"""A workspace snapshot: what a run's /workspace held, by digest, so a fresh sandbox can be
made to hold exactly the same again (after an idle release, or in a fork).

Contents never enter history: each file's bytes are a blob in the content store, named by
its SHA-256 (unchanged files are stored once across steps and runs), and the manifest below
is a blob too. History holds only the manifest's digest (`sha256:<hex>`).

The manifest holds what makes two workspaces the same for the tools in them: paths, kinds,
permission bits, file contents and link targets. Not owners (every entry belongs to the
tools' user) nor times (a restore writes everything anew). Two snapshots of the same tree
have the same digest, however they were taken.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

SNAPSHOT_VERSION = 1


class SnapshotEntry(BaseModel):
    """One entry of the workspace, relative to /workspace."""

    path: str
    kind: Literal["file", "dir", "symlink"]
    mode: int = Field(ge=0, le=0o7777)
    """Permission bits (with setuid, setgid and sticky), as `stat` gives them."""
    size: int = 0
    """A file's bytes; 0 for directories and links."""
    sha256: str | None = None
    """A file's contents: its name in the content store."""
    target: str | None = None
    """A link's target as written in it; always one that stays inside the workspace."""


class SkippedEntry(BaseModel):
    """An entry a snapshot does not keep (a link that leads out, a device, a fifo), and why."""

    path: str
    reason: str


class SnapshotManifest(BaseModel):
    """The workspace's entries, sorted by path: directories (empty ones too), files and links."""

    version: int = SNAPSHOT_VERSION
    entries: list[SnapshotEntry] = Field(default_factory=list)

    def canonical(self) -> bytes:
        """The bytes the manifest is stored as: the same tree always gives the same bytes."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["entries"] = sorted(data["entries"], key=lambda entry: entry["path"])
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries)


class SnapshotInput(BaseModel):
    """The `snapshot_workspace` activity's input: which sandbox (on the worker that holds it)."""

    workflow_id: str
    container_id: str
    started_at: str | None = None
    """The sandbox's start, as acquired: a restart since means what it held is gone."""
    disk_mb: int = 256
    """The workspace's size: the most a snapshot can read from it."""


class SnapshotOutput(BaseModel):
    """A snapshot taken: the manifest's digest, and what it holds and left out."""

    manifest: str
    """`sha256:<hex>` of the manifest's canonical bytes in the content store."""
    files: int
    bytes: int
    skipped: list[SkippedEntry] = Field(default_factory=list)
    """At most `MAX_SKIPPED_REPORTED` entries not kept, with why."""
