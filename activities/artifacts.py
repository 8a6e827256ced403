"""Files in and artifacts out: between the content store and a sandbox's /workspace.

Placing a run's files is part of acquiring its sandbox (`place_files`, called by
`acquire_sandbox`), so every sandbox the run gets, a replacement for a lost one too, starts
with them. Collecting is an activity of its own on the sandbox's host queue, run before the
sandbox is released however the run ends.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.activities.store_errors import store_failure
from tether.contracts.activities import COLLECT_ARTIFACTS
from tether.contracts.files import (
    MAX_ARTIFACT_TOTAL_BYTES,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_SKIPPED_REPORTED,
    ArtifactRecord,
    CollectInput,
    RunArtifacts,
    SkippedArtifact,
    digest_of,
)
from tether.sandbox.channel import ChannelClosed
from tether.sandbox.manager import SandboxGone, SandboxManager
from tether.sandbox.workspace import WorkspaceRefused, list_artifacts, put_file, read_artifact
from tether.store import BlobNotFound, ContentStore, StoreError


def check_files(blobs: ContentStore, files: dict[str, str], disk_mb: int | None) -> None:
    """Refuses a run at its start whose files are not all in the store, or too big for its
    sandbox: better than failing at the first tool call, minutes later."""
    total = 0
    for name, reference in sorted(files.items()):
        try:
            size = len(blobs.get(digest_of(reference)))
        except BlobNotFound:
            raise ApplicationError(f"file {name!r} ({reference[:19]}...) is not in the content store; "
                                   "upload it with the same TETHER_STORE_DIR as the workers",
                                   type="StoreMissing", non_retryable=True) from None
        except StoreError as error:
            raise store_failure(error) from None
        if size > MAX_FILE_BYTES:
            raise ApplicationError(f"file {name!r} is {size} bytes; the limit is {MAX_FILE_BYTES}",
                                   type="FilesRefused", non_retryable=True)
        total += size
    if disk_mb is not None and total > disk_mb * (1 << 20):
        raise ApplicationError(f"the run's files take {total} bytes; its workspace holds {disk_mb} MiB "
                               "(raise sandbox.disk_mb)", type="FilesRefused", non_retryable=True)


def place_files(blobs: ContentStore, sandboxes: SandboxManager, container_id: str,
                files: dict[str, str]) -> None:
    """Writes the run's files into the sandbox. A file missing from the store or refused by
    the sandbox (too big, no room) fails the acquisition for good: retrying can't help."""
    for name, reference in sorted(files.items()):
        try:
            data = blobs.get(digest_of(reference))
        except BlobNotFound:
            raise ApplicationError(f"file {name!r} ({reference[:19]}...) is not in the content store; "
                                   "upload it with the same TETHER_STORE_DIR as the workers",
                                   type="StoreMissing", non_retryable=True) from None
        except StoreError as error:
            raise store_failure(error) from None
        if len(data) > MAX_FILE_BYTES:
            raise ApplicationError(f"file {name!r} is {len(data)} bytes; the limit is {MAX_FILE_BYTES}",
                                   type="FilesRefused", non_retryable=True)
        try:
            put_file(sandboxes, container_id, name, data)
        except WorkspaceRefused as error:
            raise ApplicationError(f"file {name!r} could not be placed in /workspace: {error}",
                                   type="FilesRefused", non_retryable=True) from None


class ArtifactActivities:
    """Collects artifacts from the sandboxes of this worker's engine into the store."""

    def __init__(self, *, blobs: ContentStore, sandboxes: SandboxManager) -> None:
        self.blobs = blobs
        self.sandboxes = sandboxes

    @activity.defn(name=COLLECT_ARTIFACTS)
    async def collect(self, input: CollectInput) -> RunArtifacts:
        try:
            await asyncio.to_thread(self.sandboxes.find, input.container_id, input.started_at)
            listing = await asyncio.to_thread(
                list_artifacts, self.sandboxes, input.container_id, input.globs)
        except SandboxGone as error:
            raise ApplicationError(str(error), type="SandboxGone", non_retryable=True) from None
        except WorkspaceRefused as error:
            raise ApplicationError(f"the sandbox refused to list its workspace: {error}",
                                   type="ArtifactsUnavailable", non_retryable=True) from None
        except (ChannelClosed, TimeoutError) as error:
            raise ApplicationError(f"the sandbox's executor did not answer: {error}",
                                   type="SandboxStreamLost") from None
        skipped = [SkippedArtifact(path=path, reason=reason) for path, reason in listing.skipped]
        records: list[ArtifactRecord] = []
        total = 0
        for path, size in listing.files:
            if total + size > MAX_ARTIFACT_TOTAL_BYTES:
                skipped.append(SkippedArtifact(
                    path=path, reason=f"over the {MAX_ARTIFACT_TOTAL_BYTES}-byte limit for all artifacts"))
                continue
            try:
                data = await asyncio.to_thread(read_artifact, self.sandboxes, input.container_id, path)
            except WorkspaceRefused as error:
                skipped.append(SkippedArtifact(path=path, reason=f"changed while collected: {error}"))
                continue
            total += len(data)
            try:
                digest = await self.blobs.put_async(data)
            except StoreError as error:
                raise store_failure(error) from None
            records.append(ArtifactRecord(path=path, size=len(data), sha256=digest))
            activity.heartbeat(path)
        # After the cap, so they are always said: files past the limit, and where the
        # listing stopped.
        reported = capped(skipped, more=listing.skipped_over)
        if listing.files_over:
            reported.append(SkippedArtifact(
                path="...", reason=f"{listing.files_over} more files over the {MAX_FILES}-artifact limit"))
        if listing.cut is not None:
            reported.append(SkippedArtifact(path=listing.cut[0], reason=listing.cut[1]))
        return RunArtifacts(artifacts=records, skipped=reported)


def capped(skipped: list[SkippedArtifact], *, more: int = 0) -> list[SkippedArtifact]:
    """At most MAX_SKIPPED_REPORTED entries, then one that counts the rest and the `more`
    the listing counted without naming: a workspace of thousands of links must not fill the
    run's history."""
    rest = max(0, len(skipped) - MAX_SKIPPED_REPORTED) + more
    if not rest:
        return list(skipped)
    return [*skipped[:MAX_SKIPPED_REPORTED],
            SkippedArtifact(path="...", reason=f"and {rest} more entries skipped")]
