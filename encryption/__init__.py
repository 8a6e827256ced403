"""Encryption of what tether stores elsewhere: Temporal payloads and the conversation store.

`TETHER_ENCRYPTION_KEYS="id1:BASE64,id2:BASE64"` names AES-256-GCM keys; the first encrypts,
all of them decrypt, so a key is rotated by adding the new one in front. With no keys,
nothing is encrypted and the data converter is tether's plain pydantic one.
"""

from tether.encryption.codec import EncryptionCodec, data_converter
from tether.encryption.keys import DecryptionError, InvalidKeys, KeyRing

__all__ = ["DecryptionError", "EncryptionCodec", "InvalidKeys", "KeyRing", "data_converter"]
