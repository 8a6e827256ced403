"""A content-addressed blob store. Blobs are named by the SHA-256 of their bytes.

Model and tool activities read and write it; the workflow only ever holds digests. Where
the bytes live is a backend chosen by URL (`store/backends.py`): a local directory by
default, an object store that every host reaches when workers run on several hosts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from tether.store.backends import Blobs, file_url, open_blobs
from tether.store.errors import BlobNotFound, StoreCorrupt

__all__ = ["BlobNotFound", "ContentAddressed", "ContentStore", "LocalContentStore", "open_store"]


class ContentStore(Protocol):
    def put(self, data: bytes) -> str: ...
    def get(self, digest: str) -> bytes: ...
    async def put_async(self, data: bytes) -> str: ...
    async def get_async(self, digest: str) -> bytes: ...


class ContentAddressed:
    """Names each blob by its digest and keeps it in `blobs`. The digest is of the bytes
    given, whatever the backend (or a wrapper around it, such as encryption) stores.

    Every read is checked against its name: whoever can write the store's directory or
    bucket could otherwise change a conversation, a tool's arguments or a run's files."""

    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs.put(digest, data)
        return digest

    async def put_async(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        await self.blobs.put_async(digest, data)
        return digest

    def get(self, digest: str) -> bytes:
        return self._checked(digest, self.blobs.get(digest))

    def has(self, digest: str) -> bool:
        """Whether a blob of that name is stored (unread, so unchecked)."""
        return self.blobs.exists(digest)

    async def get_async(self, digest: str) -> bytes:
        return self._checked(digest, await self.blobs.get_async(digest))

    def _checked(self, digest: str, data: bytes) -> bytes:
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreCorrupt(
                f"blob {digest[:12]} in {self.blobs.where} does not hold the content its name "
                "says: the store was altered or damaged; delete that object (the next write of "
                "the same content stores it again) or restore the store from a backup")
        return data


class LocalContentStore(ContentAddressed):
    """Blobs as files under a directory, fanned out by the digest's first two characters."""

    def __init__(self, root: Path) -> None:
        self.root = root
        super().__init__(open_blobs(file_url(root)))


def open_store(url: str) -> ContentAddressed:
    """The content store a URL names (`file://`, `s3://`, `gs://`, `az://`)."""
    return ContentAddressed(open_blobs(url))
