"""Blobs streamed into and out of the content store (`store/streams.py`): a file of any size
is never held whole, its digest is its name, and a read that reaches the end of an altered
blob fails."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
import uuid
from pathlib import Path

import pytest
from tether.encryption import KeyRing
from tether.store import ContentAddressed, LocalContentStore, StoreCorrupt, open_blobs, open_store
from tether.store.backends import file_url
from tether.store.sealed import sealed
from tether.store.streams import blob_size, put_stream, read_chunks

from tests.s3_server import SeaweedS3, s3_server_fixture  # noqa: F401  (the fixture)

MiB = 1 << 20


def test_a_streamed_blob_is_named_by_its_digest_and_read_back_whole(tmp_path: Path):
    store = LocalContentStore(tmp_path)
    data = os.urandom(5 * MiB + 17)
    digest = put_stream(store, io.BytesIO(data))
    assert digest == hashlib.sha256(data).hexdigest()
    size, chunks = read_chunks(store, digest)
    assert size == len(data) == blob_size(store, digest)
    assert b"".join(chunks) == data
    assert store.get(digest) == data


def test_streaming_64_mib_in_and_out_never_holds_the_blob(tmp_path: Path):
    store = LocalContentStore(tmp_path)
    source = tmp_path / "source.bin"
    with source.open("wb") as f:
        for _ in range(64):
            f.write(os.urandom(MiB))
    tracemalloc.start()
    try:
        with source.open("rb") as f:
            digest = put_stream(store, f)
        _, chunks = read_chunks(store, digest)
        hashed = hashlib.sha256()
        for chunk in chunks:
            hashed.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert hashed.hexdigest() == digest
    assert peak < 24 * MiB, f"{peak} bytes held at once"


def test_the_same_content_streamed_twice_is_stored_once_and_leaves_nothing_aside(tmp_path: Path):
    store = LocalContentStore(tmp_path)
    first = put_stream(store, io.BytesIO(b"same"))
    assert put_stream(store, io.BytesIO(b"same")) == first
    assert list(open_blobs(file_url(tmp_path)).digests()) == [first]
    assert list((tmp_path / "incoming").iterdir()) == []


def test_a_read_to_the_end_of_an_altered_blob_fails(tmp_path: Path):
    store = LocalContentStore(tmp_path)
    digest = put_stream(store, io.BytesIO(b"the real content"))
    (tmp_path / digest[:2] / digest[2:]).write_bytes(b"other content")
    _, chunks = read_chunks(store, digest)
    with pytest.raises(StoreCorrupt, match=f"blob {digest[:12]}"):
        b"".join(chunks)


def test_an_encrypting_store_takes_and_gives_streams_whole(tmp_path: Path):
    store = ContentAddressed(sealed(open_blobs(file_url(tmp_path)), KeyRing.parse(KeyRing.generate("k"))))
    digest = put_stream(store, io.BytesIO(b"secret" * 1000))
    assert b"secret" not in (tmp_path / digest[:2] / digest[2:]).read_bytes()
    _, chunks = read_chunks(store, digest)
    assert b"".join(chunks) == b"secret" * 1000


def test_a_blob_streams_into_and_out_of_an_s3_store(s3_server: SeaweedS3):
    store = open_store(f"s3://tether/tests-{uuid.uuid4().hex[:8]}")
    data = os.urandom(3 * MiB)
    digest = put_stream(store, io.BytesIO(data))
    size, chunks = read_chunks(store, digest)
    assert (size, b"".join(chunks)) == (len(data), data)
    assert list(store.blobs.digests()) == [digest]  # type: ignore[attr-defined]
