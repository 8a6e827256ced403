"""A ring of AES-256-GCM keys, each with an id: the first encrypts, every one decrypts.

The id travels beside what a key encrypted (a payload's metadata, a stored blob's header),
so a reader picks the right key at once, and an error can name the key that is missing.
Key material never appears in an error message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
VARIABLE = "TETHER_ENCRYPTION_KEYS"


class InvalidKeys(Exception):
    """TETHER_ENCRYPTION_KEYS can't be read; the message says which entry and why.

    Not a ValueError on purpose: pydantic would wrap one in a ValidationError that prints
    the variable's whole value, keys and all."""


class DecryptionError(ValueError):
    """Data that can't be decrypted with the keys at hand; the message names the key id."""


@dataclass(frozen=True)
class EncryptionKey:
    id: str
    secret: bytes = field(repr=False)


class KeyRing:
    """Keys in order of preference. `encrypt` uses the first; `decrypt` the one named."""

    def __init__(self, keys: Sequence[EncryptionKey]) -> None:
        if not keys:
            raise InvalidKeys(f"{VARIABLE} holds no key")
        self.keys = tuple(keys)
        self._ciphers = {key.id: AESGCM(key.secret) for key in self.keys}

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Reads `id1:BASE64,id2:BASE64`, each a 32-byte key in standard base64."""
        keys: list[EncryptionKey] = []
        for position, entry in enumerate((e.strip() for e in text.split(",")), start=1):
            if not entry:
                continue
            key_id, colon, encoded = entry.partition(":")
            key_id = key_id.strip()
            where = f"{VARIABLE}, entry {position}"
            if not colon or not KEY_ID.match(key_id):
                raise InvalidKeys(
                    f"{where}: expected `id:BASE64` with an id of letters, digits, '.', '_' or '-' "
                    f"(at most 64); generate a key with `tether keygen ID`")
            try:
                secret = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise InvalidKeys(f"{where} (key '{key_id}'): the key is not valid base64") from None
            if len(secret) != KEY_BYTES:
                raise InvalidKeys(f"{where} (key '{key_id}'): the key is {len(secret)} bytes; "
                                  f"AES-256-GCM needs {KEY_BYTES}")
            if any(k.id == key_id for k in keys):
                raise InvalidKeys(f"{where}: the key id '{key_id}' is given twice")
            keys.append(EncryptionKey(key_id, secret))
        return cls(keys)

    @staticmethod
    def generate(key_id: str) -> str:
        """A new `id:BASE64` entry with a random key."""
        if not KEY_ID.match(key_id):
            raise InvalidKeys(f"a key id is letters, digits, '.', '_' or '-' (at most 64): {key_id!r}")
        return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"

    @property
    def primary(self) -> str:
        """The id of the key that encrypts."""
        return self.keys[0].id

    @property
    def ids(self) -> list[str]:
        return [key.id for key in self.keys]

    def encrypt(self, plaintext: bytes, associated: bytes = b"") -> tuple[str, bytes]:
        """(the key id, nonce + ciphertext) with the first key. A random 96-bit nonce per
        message, as AES-GCM requires; `associated` is authenticated, not stored."""
        nonce = os.urandom(NONCE_BYTES)
        return self.primary, nonce + self._ciphers[self.primary].encrypt(nonce, plaintext, associated)

    def decrypt(self, key_id: str, sealed: bytes, associated: bytes = b"") -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"the data is encrypted with key '{key_id}', which {VARIABLE} does not hold "
                f"(it holds {', '.join(repr(i) for i in self.ids)}); add key '{key_id}' to it")
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(f"the data encrypted with key '{key_id}' is cut short: "
                                  f"{len(sealed)} bytes, less than AES-GCM's nonce and tag")
        try:
            return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
        except InvalidTag:
            raise DecryptionError(
                f"the data can't be decrypted with key '{key_id}': {VARIABLE} holds a different "
                f"key under that id (or the data was altered)") from None

    def __repr__(self) -> str:
        return f"KeyRing(ids={self.ids})"
