"""A content-addressed blob store. Blobs are named by the SHA-256 of their bytes.

Model and tool activities read and write it; the workflow only ever holds digests. The
local directory is the default; a shared backend (S3, a database) for several hosts
implements the same two methods.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


class BlobNotFound(LookupError):
    """A digest the store does not hold: the store was wiped or is not shared between hosts."""


class ContentStore(Protocol):
    def put(self, data: bytes) -> str: ...
    def get(self, digest: str) -> bytes: ...


class LocalContentStore:
    """Blobs as files under a directory, fanned out by the digest's first two characters."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a blob, even across processes.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(
                f"blob {digest[:12]} is not in {self.root}; "
                "several hosts need a shared TETHER_STORE_DIR"
            ) from None
