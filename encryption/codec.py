"""The payload codec: every payload a tether client or worker sends is encrypted.

Temporal hands every payload (a run's input and result, activity inputs, outputs and
heartbeat details, queries, updates, signals, the summaries and details the Web UI shows) to
the data converter's codec on its way to the server and back. Failure messages go the same
way with `DefaultFailureConverterWithEncodedAttributes`. Search attributes never do: tether's
carry only a run's state, step count, cost and model name.

Each encrypted payload is the whole original payload (metadata and data) serialised and
sealed with AES-256-GCM, with `encoding: binary/encrypted` and the key's id in its metadata:
the shape Temporal's own encryption samples use, so their tools read it too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    PayloadConverter,
)
from tether.encryption.keys import DecryptionError, KeyRing

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
UNDECODABLE = "the worker cannot decode the run's payloads"
"""How a worker's failure to decrypt a run begins, in clear: see `KeyErrorsInClear`."""


class UndecodablePayload(DecryptionError):
    """A Temporal payload the keys at hand can't decrypt (not a store's blob): the message
    names the key."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = []
        for payload in payloads:
            key_id, sealed = self.keys.encrypt(payload.SerializeToString())
            encoded.append(Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=sealed))
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        # A payload that isn't encrypted passes as it is: what a run wrote before keys were
        # set stays readable after.
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)
                continue
            decoded.append(self._open(payload))
        return decoded

    def _open(self, payload: Payload) -> Payload:
        try:
            key_id = payload.metadata.get(KEY_ID, b"").decode("ascii")
        except UnicodeDecodeError:
            raise DecryptionError(f"an encrypted payload's {KEY_ID} is not a key id") from None
        try:
            plaintext = self.keys.decrypt(key_id, payload.data)
        except DecryptionError as error:
            raise UndecodablePayload(str(error)) from None
        try:
            return Payload.FromString(plaintext)
        except DecodeError:
            raise DecryptionError(f"a payload decrypted with key '{key_id}' is not a Temporal "
                                  "payload: it was not encrypted by tether's codec") from None


class KeyErrorsInClear(DefaultFailureConverterWithEncodedAttributes):
    """Encrypts every failure's message and stack trace but one: a worker that can't decrypt a
    run's payloads says so in clear. That message names key ids, never data, and whoever
    reads the run needs it to give the worker its key: encrypted with a key the run's own
    readers may not hold, it would reach them as an "Encoded failure" they cannot read."""

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter,
                   failure: Failure) -> None:
        super().to_failure(exception, payload_converter, failure)
        seen: BaseException | None = exception
        while seen is not None and not isinstance(seen, UndecodablePayload):
            seen = seen.__cause__
        if seen is not None:
            failure.ClearField("encoded_attributes")
            failure.message = f"{UNDECODABLE}: {seen}"


def data_converter(keys: KeyRing | None) -> DataConverter:
    """tether's converter: the pydantic one, and with keys, the codec and encoded failures."""
    if keys is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(keys),
        failure_converter_class=KeyErrorsInClear)
