"""Blobs of any size in and out of the content store without holding one whole in memory.

A file given to a run or taken from it may be a GiB. Where the store's backend streams (every
`ObjectBlobs`: a directory, S3, GCS, Azure), a blob is written as it is read and read as it
is sent; its digest is computed on the way, and checked at the end of a read. A backend that
must see a blob whole (an encrypting one seals it in one piece) gets it whole, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO

from tether.store.backends import ObjectBlobs
from tether.store.content import ContentAddressed, ContentStore
from tether.store.errors import StoreCorrupt

CHUNK_BYTES = 1 << 20


def put_stream(blobs: ContentStore, source: IO[bytes]) -> str:
    """Stores everything `source` reads until its end; returns the digest, its name."""
    digest = hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            yield chunk

    backend = _streaming(blobs)
    if backend is None:
        return blobs.put(b"".join(chunks()))
    return backend.put_chunks(chunks(), digest.hexdigest)


def read_chunks(blobs: ContentStore, digest: str) -> tuple[int, Iterator[bytes]]:
    """The blob's size, and its bytes in chunks. The digest is checked as they go: past the
    last chunk, a blob that does not hold what its name says raises StoreCorrupt, so a
    reader that reads to the end never takes altered bytes for the real ones."""
    backend = _streaming(blobs)
    if backend is None:
        data = blobs.get(digest)
        return len(data), iter([data])
    size, chunks = backend.get_chunks(digest, CHUNK_BYTES)

    def checked() -> Iterator[bytes]:
        hashed = hashlib.sha256()
        for chunk in chunks:
            hashed.update(chunk)
            yield chunk
        if hashed.hexdigest() != digest:
            raise StoreCorrupt(
                f"blob {digest[:12]} in {backend.where} does not hold the content its name "
                "says: the store was altered or damaged; delete that object (the next write of "
                "the same content stores it again) or restore the store from a backup")

    return size, checked()


def blob_size(blobs: ContentStore, digest: str) -> int:
    """The blob's size: from the backend's metadata where it streams (no byte read; the
    read that sends it checks its digest), else from the checked bytes."""
    backend = _streaming(blobs)
    return len(blobs.get(digest)) if backend is None else backend.size_of(digest)


def _streaming(blobs: ContentStore) -> ObjectBlobs | None:
    """The backend beneath a content-addressed store, when it streams."""
    if isinstance(blobs, ContentAddressed) and isinstance(blobs.blobs, ObjectBlobs):
        return blobs.blobs
    return None
