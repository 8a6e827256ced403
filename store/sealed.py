"""Encryption of the store's bytes: a wrapper around any backend (`Blobs`) that encrypts on
put and decrypts on get, so it composes with the directory, S3, GCS and Azure alike.

Blobs stay named by the digest of their *plaintext*, as `ContentAddressed` computes it
before the bytes reach this wrapper. Encryption uses a random nonce, so the same content
encrypted twice differs; naming blobs by that ciphertext would give a retried write a new
name each time (no dedupe, a second copy per retry) and make a conversation's name change
with the key. What the plaintext digest lets someone with the store but no key learn is
only whether two blobs hold the same content, or whether a blob holds a text they guess
whole. The digest is authenticated with each blob, so a blob can't be moved under another
name unnoticed.

A stored blob is `MAGIC, one byte: len(key id), key id, nonce + AES-GCM ciphertext`. A blob
without MAGIC was written before keys were set: it is read as it is, after checking that it
matches its digest.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from tether.store.backends import Blobs
from tether.store.errors import StoreCorrupt

MAGIC = b"tether-sealed\x01"
SEALED_MIN = 12 + 16
"""AES-GCM's nonce and tag: the least a sealed blob holds after its header."""


class Cipher(Protocol):
    """Keys by id: `encrypt` with the current key, `decrypt` with the one named
    (`tether.encryption.KeyRing`)."""

    @property
    def primary(self) -> str: ...
    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> tuple[str, bytes]: ...
    def decrypt(self, key_id: str, sealed: bytes, associated: bytes = b"") -> bytes: ...


class SealedBlobs:
    def __init__(self, inner: Blobs, cipher: Cipher) -> None:
        self.inner = inner
        self.cipher = cipher
        self.where = inner.where

    def put(self, digest: str, data: bytes) -> None:
        self.inner.put(digest, self._seal(digest, data))

    async def put_async(self, digest: str, data: bytes) -> None:
        await self.inner.put_async(digest, self._seal(digest, data))

    def _seal(self, digest: str, data: bytes) -> bytes:
        key_id, sealed = self.cipher.encrypt(data, digest.encode())
        return MAGIC + bytes([len(key_id)]) + key_id.encode() + sealed

    def get(self, digest: str) -> bytes:
        return self._open(digest, self.inner.get(digest))

    async def get_async(self, digest: str) -> bytes:
        return self._open(digest, await self.inner.get_async(digest))

    def _open(self, digest: str, stored: bytes) -> bytes:
        if not stored.startswith(MAGIC):
            if hashlib.sha256(stored).hexdigest() != digest:
                raise StoreCorrupt(f"blob {digest[:12]} in {self.where} is neither encrypted nor "
                                   "the content its name says: the store was altered")
            return stored
        key_id, sealed = self._header(digest, stored)
        return self.cipher.decrypt(key_id, sealed, digest.encode())

    def reseal(self, digest: str, stored: bytes) -> bytes | None:
        """`stored` sealed under the current key instead, or None when it already is
        (`tether store rekey`)."""
        if stored.startswith(MAGIC) and self._header(digest, stored)[0] == self.cipher.primary:
            return None
        return self._seal(digest, self._open(digest, stored))

    def _header(self, digest: str, stored: bytes) -> tuple[str, bytes]:
        """(key id, nonce + ciphertext) of a sealed blob; a blob cut short (a write that
        stopped half way on a store without atomic writes, a damaged disk) says so."""
        start = len(MAGIC) + 1
        end = start + (stored[len(MAGIC)] if len(stored) >= start else 0)
        key_id = stored[start:end]
        if len(stored) < end + SEALED_MIN or not key_id or not key_id.isascii():
            raise StoreCorrupt(
                f"blob {digest[:12]} in {self.where} is cut short or garbled ({len(stored)} bytes, "
                "an encrypted blob's header and no whole ciphertext): delete that object (the "
                "next write of the same content stores it again) or restore it from a backup")
        return key_id.decode(), stored[end:]

    def exists(self, digest: str) -> bool:
        return self.inner.exists(digest)


def sealed(blobs: Blobs, cipher: Cipher | None) -> Blobs:
    """`blobs` encrypted with `cipher`'s keys; as they are when there are none."""
    return blobs if cipher is None else SealedBlobs(blobs, cipher)
