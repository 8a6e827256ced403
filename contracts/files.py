"""Files a run is given and the artifacts it leaves: names, limits and records.

Contents never enter history: a file travels through the content store, named by its
SHA-256 digest, and history holds only `{name: "sha256:<digest>"}` and the records below.
Every name is a path relative to the sandbox's `/workspace`, checked here once so the
workflow, the worker and the CLI refuse the same things with the same words.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

DEFAULT_MAX_FILE_MB = 1024
MAX_FILE_BYTES = DEFAULT_MAX_FILE_MB << 20
"""A file given to a run, or an artifact taken from it, unless the worker's (or the CLI's)
`MAX_FILE_SETTING` says otherwise. Files cross at disk speed (tar streams), so the cap is
about the workspace and the store, not the channel."""
MAX_FILE_SETTING = "TETHER_MAX_FILE_MB"
MAX_FILES = 1000
"""Files given to one run, and artifacts taken from one."""
MAX_ARTIFACT_TOTAL_BYTES = 256 * 1024 * 1024
"""All of a run's artifacts together, when its collection does not say (the default
workspace's size; a run's collection says its own workspace's, `sandbox.disk_mb`)."""
MAX_SKIPPED_REPORTED = 100
"""Skipped artifacts listed one by one in the result; more are counted in one line."""
MAX_WALKED_ENTRIES = 100_000
"""Workspace entries (files, directories, anything) one artifact listing looks at: past them
the listing is cut, and says where. A default workspace holds 32,768 files."""
MAX_NAME_CHARS = 1024
DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


def name_problem(name: str, *, what: str = "file name") -> str | None:
    """Why `name` can't be a path inside the workspace, or None when it can.

    Relative, `/`-separated, no empty, `.` or `..` component, no backslash or control
    character: a name that passes can only ever mean a place under the workspace (or under
    the directory artifacts are downloaded to)."""
    if not name:
        return f"{what} is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"{what} {name[:40]!r}... is longer than {MAX_NAME_CHARS} characters"
    if name.startswith("/"):
        return f"{what} {name!r} is absolute; names are relative to /workspace"
    if _UNSAFE_CHARS.search(name):
        return f"{what} {name!r} holds a backslash or a control character"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return f"{what} {name!r} has an empty, '.' or '..' part: it must stay inside /workspace"
    return None


def digest_of(reference: str) -> str:
    """The hex digest of a `sha256:<digest>` reference (ValueError when it is not one)."""
    if not _DIGEST.fullmatch(reference):
        raise ValueError(f"{reference!r} is not a content reference like 'sha256:<64 hex digits>'")
    return reference.removeprefix(DIGEST_PREFIX)


class ArtifactRecord(BaseModel):
    """One file a run left in its workspace, stored by digest."""

    path: str
    """Relative to /workspace."""
    size: int
    sha256: str
    """The digest of its bytes: its name in the content store."""


class SkippedArtifact(BaseModel):
    """A workspace entry a glob matched that was not collected, and why."""

    path: str
    reason: str


class RunArtifacts(BaseModel):
    """What collection found: the `artifacts` query's answer, and part of the result."""

    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    skipped: list[SkippedArtifact] = Field(default_factory=list)


class CollectInput(BaseModel):
    """The `collect_artifacts` activity's input: which sandbox, and what to take from it."""

    workflow_id: str
    container_id: str
    started_at: str | None = None
    globs: list[str]
    max_total_bytes: int = Field(default=MAX_ARTIFACT_TOTAL_BYTES, ge=1)
    """All the artifacts together: at most what the run's workspace holds."""
