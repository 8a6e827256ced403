"""Files in and artifacts out: between the content store and a sandbox's /workspace.

Placing a run's files is part of acquiring its sandbox (`place_files`, called by
`acquire_sandbox`), so every sandbox the run gets, a replacement for a lost one too, starts
with them. Collecting is an activity of its own on the sandbox's host queue, run before the
sandbox is released however the run ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import IO

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.activities.store_errors import store_failure
from tether.contracts.activities import COLLECT_ARTIFACTS
from tether.contracts.files import (
    MAX_FILE_BYTES,
    MAX_FILE_SETTING,
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
from tether.sandbox.transfer import Entry, Incoming, TransferRefused, stream_into, stream_out
from tether.sandbox.workspace import WorkspaceRefused, list_artifacts
from tether.store import BlobNotFound, ContentStore, StoreError
from tether.store.streams import blob_size, put_stream, read_chunks


def too_big(name: str, size: int, max_bytes: int) -> ApplicationError:
    return ApplicationError(
        f"file {name!r} is {size} bytes; the limit is {max_bytes} ({MAX_FILE_SETTING}="
        f"{max_bytes >> 20} on the worker: raise it there for bigger files)",
        type="FilesRefused", non_retryable=True)


def _sizes(blobs: ContentStore, files: dict[str, str], max_bytes: int) -> dict[str, int]:
    """Each file's size, read from the store's metadata (no file is read whole), each
    within `max_bytes`."""
    sizes = {}
    for name, reference in sorted(files.items()):
        try:
            size = blob_size(blobs, digest_of(reference))
        except BlobNotFound:
            raise ApplicationError(f"file {name!r} ({reference[:19]}...) is not in the content store; "
                                   "upload it with the same TETHER_STORE_DIR as the workers",
                                   type="StoreMissing", non_retryable=True) from None
        except StoreError as error:
            raise store_failure(error) from None
        if size > max_bytes:
            raise too_big(name, size, max_bytes)
        sizes[name] = size
    return sizes


def check_files(blobs: ContentStore, files: dict[str, str], disk_mb: int | None,
                max_bytes: int = MAX_FILE_BYTES) -> None:
    """Refuses a run at its start whose files are not all in the store, or too big for its
    sandbox: better than failing at the first tool call, minutes later."""
    total = sum(_sizes(blobs, files, max_bytes).values())
    if disk_mb is not None and total > disk_mb * (1 << 20):
        raise ApplicationError(f"the run's files take {total} bytes; its workspace holds {disk_mb} MiB "
                               "(raise sandbox.disk_mb)", type="FilesRefused", non_retryable=True)


async def place_files(blobs: ContentStore, sandboxes: SandboxManager, container_id: str,
                      files: dict[str, str], *, max_bytes: int = MAX_FILE_BYTES) -> None:
    """Streams the run's files from the store into the sandbox's workspace, one tar. A file
    missing from the store, over `max_bytes`, altered in the store, or refused by the sandbox
    (no room) fails the acquisition for good: retrying can't help. Each file is checked on
    both ends: the store's bytes against their digest as they are read, and the digest the
    sandbox computed of what it wrote against the file's reference."""
    sizes = await asyncio.to_thread(_sizes, blobs, files, max_bytes)

    def chunks(reference: str) -> Iterator[bytes]:
        _, read = read_chunks(blobs, digest_of(reference))
        yield from read

    # The store's read checks each file's digest as it goes: the transfer holds the sandbox's
    # report to that digest without hashing the bytes a second time here.
    members = [Incoming(name, size=sizes[name], data=chunks(reference), sha256=digest_of(reference))
               for name, reference in sorted(files.items())]
    try:
        await stream_into(sandboxes, container_id, ".", members, max_bytes=sum(sizes.values()))
    except TransferRefused as error:
        raise ApplicationError(f"the run's files could not be placed in /workspace: {error}",
                               type="FilesRefused", non_retryable=True) from None
    except StoreError as error:
        raise store_failure(error) from None


class ArtifactActivities:
    """Collects artifacts from the sandboxes of this worker's engine into the store.
    `max_file_bytes`: the largest artifact taken (the worker's TETHER_MAX_FILE_MB)."""

    def __init__(self, *, blobs: ContentStore, sandboxes: SandboxManager,
                 max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.blobs = blobs
        self.sandboxes = sandboxes
        self.max_file_bytes = max_file_bytes

    @activity.defn(name=COLLECT_ARTIFACTS)
    async def collect(self, input: CollectInput) -> RunArtifacts:
        try:
            await asyncio.to_thread(self.sandboxes.find, input.container_id, input.started_at)
            listing = await asyncio.to_thread(list_artifacts, self.sandboxes, input.container_id,
                                              input.globs, max_bytes=self.max_file_bytes)
        except SandboxGone as error:
            raise ApplicationError(str(error), type="SandboxGone", non_retryable=True) from None
        except WorkspaceRefused as error:
            raise ApplicationError(f"the sandbox refused to list its workspace: {error}",
                                   type="ArtifactsUnavailable", non_retryable=True) from None
        except (ChannelClosed, TimeoutError) as error:
            raise ApplicationError(f"the sandbox's executor did not answer: {error}",
                                   type="SandboxStreamLost") from None
        skipped = [SkippedArtifact(path=path, reason=reason) for path, reason in listing.skipped]
        taken: list[tuple[str, int]] = []
        total = 0
        for path, size in listing.files:
            if total + size > input.max_total_bytes:
                skipped.append(SkippedArtifact(
                    path=path, reason=f"over the {input.max_total_bytes}-byte limit for all artifacts "
                                      "(the run's sandbox.disk_mb)"))
                continue
            total += size
            taken.append((path, size))
        records, more_skipped = await self._take(input, taken)
        skipped += more_skipped
        # After the cap, so they are always said: files past the limit, and where the
        # listing stopped.
        reported = capped(skipped, more=listing.skipped_over)
        if listing.files_over:
            reported.append(SkippedArtifact(
                path="...", reason=f"{listing.files_over} more files over the {MAX_FILES}-artifact limit"))
        if listing.cut is not None:
            reported.append(SkippedArtifact(path=listing.cut[0], reason=listing.cut[1]))
        return RunArtifacts(artifacts=records, skipped=reported)

    async def _take(self, input: CollectInput,
                    taken: list[tuple[str, int]]) -> tuple[list[ArtifactRecord], list[SkippedArtifact]]:
        """The listed files, streamed out of the sandbox in one tar into the store, each
        stored as it arrives (never held whole) under the digest this side computed."""
        if not taken:
            return [], []
        stored: dict[str, str] = {}
        too_big: list[SkippedArtifact] = []

        def keep(entry: Entry, data: IO[bytes] | None) -> None:
            if data is None:
                return
            if entry.size > self.max_file_bytes:  # grew since it was listed
                too_big.append(SkippedArtifact(path=entry.path, reason=(
                    f"{entry.size} bytes is over the {self.max_file_bytes}-byte limit per artifact")))
                return
            stored[entry.path] = put_stream(self.blobs, data)

        try:
            got = await stream_out(self.sandboxes, input.container_id, ".", keep,
                                   paths=[path for path, _ in taken], started_at=input.started_at,
                                   max_bytes=input.max_total_bytes)
        except SandboxGone as error:
            raise ApplicationError(str(error), type="SandboxGone", non_retryable=True) from None
        except TransferRefused as error:
            raise ApplicationError(f"the sandbox's artifacts could not be taken: {error}",
                                   type="ArtifactsUnavailable", non_retryable=True) from None
        except StoreError as error:
            raise store_failure(error) from None
        skipped = [SkippedArtifact(path=path, reason=f"changed while collected: {reason}")
                   for path, reason in got.skipped] + too_big
        records = [ArtifactRecord(path=entry.path, size=entry.size, sha256=entry.sha256)
                   for entry in got.entries if entry.path in stored]
        # The store's name for each is the digest this side computed of the bytes it read;
        # the stream's own check held it to the sandbox's report.
        for record in records:
            if stored[record.path] != record.sha256:
                raise ApplicationError(f"artifact {record.path!r} was stored as other bytes than it"
                                       " was read as", type="ArtifactsUnavailable", non_retryable=True)
        return records, skipped


def capped(skipped: list[SkippedArtifact], *, more: int = 0) -> list[SkippedArtifact]:
    """At most MAX_SKIPPED_REPORTED entries, then one that counts the rest and the `more`
    the listing counted without naming: a workspace of thousands of links must not fill the
    run's history."""
    rest = max(0, len(skipped) - MAX_SKIPPED_REPORTED) + more
    if not rest:
        return list(skipped)
    return [*skipped[:MAX_SKIPPED_REPORTED],
            SkippedArtifact(path="...", reason=f"and {rest} more entries skipped")]
