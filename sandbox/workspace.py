"""Small files into a sandbox's /workspace, and the listing of its artifacts, through its
executor. A run's files and artifacts themselves cross by tar streams (`transfer.py`), at
disk speed; these JSON ops stay for what needs the executor's own checks.

Not `put_archive`/`get_archive`: the root is read-only and the workspace a tmpfs, which the
engine's archive API does not reach. The executor's ops (`file_put`, `artifact_list`) open
every path beneath /workspace without following links and list regular files with one name
only; the host checks every name the sandbox returns again (`name_problem`) and counts every
byte. Blocking calls: async callers run them in a thread.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from tether.contracts.files import (
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_NAME_CHARS,
    MAX_SKIPPED_REPORTED,
    MAX_WALKED_ENTRIES,
    name_problem,
)
from tether.sandbox.channel import ChannelCorrupt
from tether.sandbox.manager import ANSWER_TIMEOUT_S, SandboxManager, corrupted

CHUNK_BYTES = 1 << 20
"""Bytes per request: one JSON line of about 1.4 MB, small beside the stream's frames."""
LIST_TIMEOUT_S = 60.0


class WorkspaceRefused(RuntimeError):
    """The executor refused an op: a name it won't open, a full workspace, a changed file."""


@dataclass(frozen=True)
class Listing:
    files: list[tuple[str, int]]
    """(path, size) of each regular file a glob matched, up to `max_files`."""
    skipped: list[tuple[str, str]]
    """(path, reason) of each matched entry that is not taken, up to `max_skipped`."""
    files_over: int = 0
    """Files matched past `max_files`: counted, not listed."""
    skipped_over: int = 0
    """Entries skipped past `max_skipped`: counted, not listed."""
    cut: tuple[str, str] | None = None
    """(directory, why) when the walk stopped at `max_walked` entries: what it had not
    reached is neither listed nor counted."""


def put_file(sandboxes: SandboxManager, container_id: str, path: str, data: bytes) -> None:
    """Writes one file under /workspace, in chunks (parents made as needed)."""
    problem = name_problem(path)
    if problem:
        raise WorkspaceRefused(problem)
    offsets = range(0, max(len(data), 1), CHUNK_BYTES)
    for offset in offsets:
        _ask(sandboxes, container_id, {
            "op": "file_put", "path": path, "append": offset > 0,
            "data": base64.b64encode(data[offset:offset + CHUNK_BYTES]).decode()})


def list_artifacts(sandboxes: SandboxManager, container_id: str, globs: list[str], *,
                   max_bytes: int = MAX_FILE_BYTES, max_files: int = MAX_FILES,
                   max_skipped: int = MAX_SKIPPED_REPORTED,
                   max_walked: int = MAX_WALKED_ENTRIES) -> Listing:
    result = _ask(sandboxes, container_id,
                  {"op": "artifact_list", "globs": globs, "max_bytes": max_bytes,
                   "max_files": max_files, "max_skipped": max_skipped, "max_walked": max_walked},
                  timeout=LIST_TIMEOUT_S)
    # The executor is in a hostile place: what it returns is held to the bounds it was given.
    entries, found = result.get("skipped", []), result.get("files", [])
    skipped = [(str(s["path"]), str(s["reason"])) for s in entries[:max_skipped]]
    skipped_over = max(0, int(result.get("skipped_over", 0))) + len(entries[max_skipped:])
    files = []
    for entry in found[:max_files]:
        path, size = str(entry["path"]), int(entry["size"])
        # A name it returns is checked as if a tool wrote it.
        problem = name_problem(path, what="name")
        if problem:
            skipped.append((path, problem))
        else:
            files.append((path, size))
    files_over = max(0, int(result.get("files_over", 0))) + len(found[max_files:])
    cut = result.get("cut")
    return Listing(files=files, skipped=skipped, files_over=files_over, skipped_over=skipped_over,
                   cut=_cut(cut, max_walked) if cut else None)


def _cut(cut: dict[str, Any], max_walked: int) -> tuple[str, str]:
    where = str(cut.get("path", "."))[:MAX_NAME_CHARS]
    return where, (f"the listing was cut: it stopped after {max_walked} entries, in {where!r}; "
                   "entries it had not reached are not listed (collect with narrower globs)")


def _ask(sandboxes: SandboxManager, container_id: str, request: dict[str, Any], *,
         timeout: float = ANSWER_TIMEOUT_S * 6) -> dict[str, Any]:
    try:
        response = sandboxes.channel(container_id).request(request).result(timeout=timeout)
    except ChannelCorrupt as error:
        raise corrupted(container_id, error) from None
    if not response.get("ok"):
        raise WorkspaceRefused(str(response.get("error")))
    result: dict[str, Any] = response.get("result") or {}
    return result
