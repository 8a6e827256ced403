"""Workspace snapshots: a sandbox's /workspace into the content store (`snapshot_workspace`,
on the host queue of the worker that holds the sandbox) and back into a new sandbox
(`restore_snapshot`, part of acquiring it, like a run's files).

Both go through the tar streams of `sandbox/transfer.py`, at disk speed; the store keeps
each file once by digest, however many snapshots hold it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import IO

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.activities.store_errors import store_failure
from tether.contracts.activities import SNAPSHOT_WORKSPACE
from tether.contracts.snapshots import SnapshotInput, SnapshotOutput
from tether.sandbox.manager import SandboxGone, SandboxManager
from tether.sandbox.transfer import Entry, Incoming, TransferRefused, stream_into, stream_out
from tether.store import BlobNotFound, ContentStore, StoreError
from tether.store.snapshots import (
    ManifestBuilder,
    SnapshotRefused,
    file_chunks,
    load_manifest,
    store_manifest,
)


class SnapshotActivities:
    """Snapshots the workspaces of sandboxes on this worker's engine."""

    def __init__(self, *, sandboxes: SandboxManager, blobs: ContentStore) -> None:
        self.sandboxes = sandboxes
        self.blobs = blobs

    @activity.defn(name=SNAPSHOT_WORKSPACE)
    async def snapshot(self, input: SnapshotInput) -> SnapshotOutput:
        """Every directory, file and link inside the workspace, by digest; what it can't keep
        (a link that leads out, a device, a file that changed while read) is listed."""
        with ManifestBuilder(self.blobs) as builder:
            return await self._take(input, builder)

    async def _take(self, input: SnapshotInput, builder: ManifestBuilder) -> SnapshotOutput:
        def keep(entry: Entry, data: IO[bytes] | None) -> None:
            if data is not None:
                builder.add_file(entry.path, entry.mode, data)
            elif entry.kind == "dir":
                builder.add_dir(entry.path, entry.mode)
            else:
                builder.add_link(entry.path, entry.target)

        try:
            async with heartbeating("snapshot"):
                got = await stream_out(self.sandboxes, input.container_id, ".", keep,
                                       max_bytes=input.disk_mb << 20, started_at=input.started_at)
            for path, reason in got.skipped:
                builder.skip(path, reason)
            manifest = await asyncio.to_thread(builder.manifest)
            reference = await asyncio.to_thread(store_manifest, self.blobs, manifest)
        except SandboxGone as gone:
            raise ApplicationError(str(gone), type="SandboxGone", non_retryable=True) from None
        except TransferRefused as refused:
            raise ApplicationError(f"the workspace could not be snapshot: {refused}",
                                   type="SnapshotRefused", non_retryable=True) from None
        except StoreError as error:
            raise store_failure(error) from None
        files = [entry for entry in manifest.entries if entry.kind == "file"]
        return SnapshotOutput(manifest=reference, files=len(files), bytes=manifest.total_bytes,
                              skipped=builder.skipped)


async def restore_snapshot(blobs: ContentStore, sandboxes: SandboxManager, container_id: str,
                           reference: str, *, disk_mb: int) -> None:
    """Recreates a snapshot's workspace in a new, empty sandbox. A snapshot missing from the
    store, or one that would leave the workspace, fails the acquisition for good."""
    try:
        manifest = load_manifest(blobs, reference)
        members = [
            Incoming(entry.path, kind=entry.kind, size=entry.size, mode=entry.mode,
                     target=entry.target or "",
                     data=file_chunks(blobs, entry.sha256) if entry.sha256 else ())
            for entry in manifest.entries]
        await stream_into(sandboxes, container_id, ".", members, max_bytes=disk_mb << 20)
    except BlobNotFound:
        raise ApplicationError(f"snapshot {reference[:19]}... (or a file of it) is not in the content "
                               "store; restore it with the same TETHER_STORE_URL as the worker that "
                               "took it", type="StoreMissing", non_retryable=True) from None
    except (SnapshotRefused, TransferRefused) as refused:
        raise ApplicationError(f"snapshot {reference[:19]}... could not be restored: {refused}",
                               type="SnapshotRefused", non_retryable=True) from None
    except StoreError as error:
        raise store_failure(error) from None


@contextlib.asynccontextmanager
async def heartbeating(what: str) -> AsyncIterator[None]:
    """Heartbeats every second while a stream runs in its thread: a worker killed mid-stream
    has its attempt retried after the heartbeat timeout, not the whole start-to-close one."""

    async def beat() -> None:
        while activity.in_activity():  # also called outside one: by the benchmarks
            activity.heartbeat(what)
            await asyncio.sleep(1)

    task = asyncio.ensure_future(beat())
    try:
        yield
    finally:
        task.cancel()
