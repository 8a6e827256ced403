"""`tether store rekey`: every blob of the store under the current key, so an old key can go.

Blobs are named by the digest of their plaintext and written create-only, so a blob first
written under an old key stays under it: every run's first node (the default system prompt)
is one blob, written once. Rekey reads each blob not under the current key (or not
encrypted at all), opens it with the keys at hand and writes it back sealed with the current
key, over the old one in a single step (`ObjectBlobs.replace`).

- **Safe while workers run.** A reader sees the old blob or the new one, both whole and both
  readable while the old key is still held; a worker writing the same content at the same
  time writes the same plaintext. Blobs written meanwhile are under the current key already,
  once every worker has it in front.
- **Resumable and idempotent.** Each blob is done on its own and stays done: a rekey
  stopped anywhere (Ctrl-C, a crash, a store that went away) leaves every blob readable
  with the keys it had, and running it again does the rest.
- **Nothing is re-encrypted that doesn't open:** a blob under a key not held, or one that
  isn't what its name says, is reported and left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from tether.encryption.keys import DecryptionError, KeyRing
from tether.store.errors import StoreCorrupt
from tether.store.sealed import SealedBlobs


class Rewritable(Protocol):
    """What rekey needs of a backend (`ObjectBlobs`): to list, read and replace blobs."""

    where: str

    def digests(self) -> Iterator[str]: ...
    def get(self, digest: str) -> bytes: ...
    def put(self, digest: str, data: bytes) -> None: ...
    def exists(self, digest: str) -> bool: ...
    async def put_async(self, digest: str, data: bytes) -> None: ...
    async def get_async(self, digest: str) -> bytes: ...
    def replace(self, digest: str, data: bytes) -> None: ...


@dataclass
class RekeyCounts:
    blobs: int = 0
    """Blobs looked at so far."""
    rekeyed: int = 0
    """Rewritten under the current key by this run."""
    current: int = 0
    """Already under the current key."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """(digest, why) of each blob that could not be opened, left as it was."""


def rekey(blobs: Rewritable, keys: KeyRing, *,
          progress: Callable[[RekeyCounts], None] | None = None,
          digests: list[str] | None = None) -> RekeyCounts:
    """Rewrites every blob of `blobs` not under `keys.primary`; `progress` is called after
    each blob. `digests`: the blobs to look at, when the caller has listed them already."""
    sealer = SealedBlobs(blobs, keys)
    counts = RekeyCounts()
    for digest in blobs.digests() if digests is None else digests:
        try:
            resealed = sealer.reseal(digest, blobs.get(digest))
        except (DecryptionError, StoreCorrupt) as error:
            counts.unreadable.append((digest, str(error)))
        else:
            if resealed is None:
                counts.current += 1
            else:
                blobs.replace(digest, resealed)
                counts.rekeyed += 1
        counts.blobs += 1
        if progress is not None:
            progress(counts)
    return counts
