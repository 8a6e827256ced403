"""Where the content store's bytes live, chosen by URL: a local directory, or an object store
that every host reaches (S3 and S3-compatible stores, Google Cloud Storage, Azure Blob).

One library, obstore, speaks to all of them, so tether keeps no client of its own per cloud.
A backend knows blobs only by digest and never changes one it holds; that narrow interface
(`Blobs`) is what wrappers such as encryption compose with.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotSupportedError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import AzureStore, GCSStore, LocalStore, ObjectStore, S3Store
from tether.store.errors import BlobNotFound, StoreDenied, StoreError, StoreUnavailable

SCHEMES = ("file", "s3", "gs", "az")
PART_BYTES = 5 << 20
INCOMING = "incoming"
"""Where a streamed blob is written before its digest is known (`ObjectBlobs.put_chunks`);
the store's listing (`ObjectBlobs.digests`) takes nothing under it for a blob."""
"""What TETHER_STORE_URL may name."""

# Temporal owns retries: a store that stays away fails the activity, whose retries are in
# the history. A few quick retries inside one call ride out a dropped connection without
# redoing a whole model call for it.
RETRIES = {"max_retries": 2, "retry_timeout": timedelta(seconds=10),
           "backoff": {"init_backoff": timedelta(milliseconds=100),
                       "max_backoff": timedelta(seconds=2), "base": 2.0}}


class Blobs(Protocol):
    """Immutable bytes by digest. `put` is idempotent: a digest already held is left alone.
    The `_async` methods never block the event loop: async activities use them."""

    where: str
    """The store's URL, for messages."""

    def put(self, digest: str, data: bytes) -> None: ...
    def get(self, digest: str) -> bytes: ...
    def exists(self, digest: str) -> bool: ...
    async def put_async(self, digest: str, data: bytes) -> None: ...
    async def get_async(self, digest: str) -> bytes: ...


class ObjectBlobs:
    """Blobs as objects `<digest[:2]>/<digest[2:]>` under the store's prefix: the same layout
    as the directory store has always had, so an existing store reads as before.

    obstore does the I/O on its own threads, so the async methods wait without holding the
    event loop, for a directory as for a bucket."""

    def __init__(self, store: ObjectStore, *, where: str, root: Path | None = None) -> None:
        self.store = store
        self.where = where
        self.root = root
        """A directory store's directory: streams read and write its files directly, at disk
        speed (obstore's own local streams are several times slower)."""

    def put(self, digest: str, data: bytes) -> None:
        key = _key(digest)
        try:
            try:
                # Create-only: an object is never overwritten, even by two hosts at once.
                obstore.put(self.store, key, data, mode="create")
            except NotSupportedError:
                # A store without conditional writes: same digest, same bytes, so a racing
                # second write changes nothing a reader could see.
                if not self.exists(digest):
                    obstore.put(self.store, key, data)
        except AlreadyExistsError:
            pass
        except BaseError as error:
            raise self._failed("write to", error) from None

    async def put_async(self, digest: str, data: bytes) -> None:
        key = _key(digest)
        try:
            try:
                await obstore.put_async(self.store, key, data, mode="create")
            except NotSupportedError:
                if not await self._exists_async(digest):
                    await obstore.put_async(self.store, key, data)
        except AlreadyExistsError:
            pass
        except BaseError as error:
            raise self._failed("write to", error) from None

    def get(self, digest: str) -> bytes:
        key = _key(digest)
        try:
            return bytes(obstore.get(self.store, key).bytes())
        except FileNotFoundError:
            raise self._missing(digest) from None
        except BaseError as error:
            raise self._failed("read from", error) from None

    async def get_async(self, digest: str) -> bytes:
        key = _key(digest)
        try:
            found = await obstore.get_async(self.store, key)
            return bytes(await found.bytes_async())
        except FileNotFoundError:
            raise self._missing(digest) from None
        except BaseError as error:
            raise self._failed("read from", error) from None

    def put_chunks(self, chunks: Iterable[bytes], name: Callable[[], str]) -> str:
        """Writes `chunks` as they come, then names the blob `name()` (its digest, known only
        once they are all read): under `incoming/` first, renamed after, so a reader never
        sees half a blob under its name. Returns the name."""
        if self.root is not None:
            return self._put_file(chunks, name)
        incoming = f"{INCOMING}/{uuid.uuid4().hex}"
        try:
            # In parts of the least size S3 allows, two at a time: a GiB never sits in memory.
            obstore.put(self.store, incoming, chunks, use_multipart=True, chunk_size=PART_BYTES,
                        max_concurrency=2)
            digest = name()
            try:
                obstore.rename(self.store, incoming, _key(digest), overwrite=False)
            except AlreadyExistsError:
                obstore.delete(self.store, incoming)  # the same content, stored before
            except NotSupportedError:
                # No rename-if-absent here: the same name holds the same bytes either way.
                obstore.rename(self.store, incoming, _key(digest), overwrite=True)
        except BaseError as error:
            raise self._failed("write to", error) from None
        return digest

    def _put_file(self, chunks: Iterable[bytes], name: Callable[[], str]) -> str:
        assert self.root is not None
        incoming = self.root / INCOMING
        temporary = incoming / uuid.uuid4().hex
        try:
            incoming.mkdir(exist_ok=True)
            with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            digest = name()
            final = self.root / _key(digest)
            final.parent.mkdir(exist_ok=True)
            with contextlib.suppress(FileExistsError):  # the same content, stored before
                os.link(temporary, final)
        except OSError as error:
            raise StoreUnavailable(f"could not write to the store {self.where}: {error}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        return digest

    def get_chunks(self, digest: str, chunk_bytes: int) -> tuple[int, Iterator[bytes]]:
        """The blob's size and its bytes as they are read (unchecked: see streams.py)."""
        if self.root is not None:
            return self._file_chunks(digest, chunk_bytes)
        try:
            found = obstore.get(self.store, _key(digest))
        except FileNotFoundError:
            raise self._missing(digest) from None
        except BaseError as error:
            raise self._failed("read from", error) from None

        def chunks() -> Iterator[bytes]:
            try:
                for chunk in found.stream(min_chunk_size=chunk_bytes):
                    yield bytes(chunk)
            except BaseError as error:
                raise self._failed("read from", error) from None

        return int(found.meta["size"]), chunks()

    def _file_chunks(self, digest: str, chunk_bytes: int) -> tuple[int, Iterator[bytes]]:
        assert self.root is not None
        try:
            source = open(self.root / _key(digest), "rb")  # noqa: SIM115  # closed by the generator
        except FileNotFoundError:
            raise self._missing(digest) from None
        except OSError as error:
            raise StoreUnavailable(f"could not read from the store {self.where}: {error}") from None

        def chunks() -> Iterator[bytes]:
            with source:
                while chunk := source.read(chunk_bytes):
                    yield chunk

        return os.fstat(source.fileno()).st_size, chunks()

    def size_of(self, digest: str) -> int:
        if self.root is not None:
            try:
                return (self.root / _key(digest)).stat().st_size
            except FileNotFoundError:
                raise self._missing(digest) from None
        try:
            return int(obstore.head(self.store, _key(digest))["size"])
        except FileNotFoundError:
            raise self._missing(digest) from None
        except BaseError as error:
            raise self._failed("read from", error) from None

    def exists(self, digest: str) -> bool:
        try:
            obstore.head(self.store, _key(digest))
        except FileNotFoundError:
            return False
        except BaseError as error:
            raise self._failed("read from", error) from None
        return True

    def digests(self) -> Iterator[str]:
        """Every digest the store holds, listed as it goes (`tether store rekey`)."""
        try:
            for batch in obstore.list(self.store, chunk_size=1000):
                for meta in batch:
                    # Anything else under the prefix (a directory store's unfinished write,
                    # say) is not a blob.
                    path = meta["path"]
                    digest = path[:2] + path[3:]
                    if path[2:3] == "/" and len(digest) == 64 and set(digest) <= HEX:
                        yield digest
        except BaseError as error:
            raise self._failed("list", error) from None

    def replace(self, digest: str, data: bytes) -> None:
        """Writes `data` over the blob in one step: a reader sees the old bytes or the new,
        never a mix or none (a directory store writes a new file and renames it over the
        old; S3, GCS and Azure replace an object with one request). Only for the same
        content under another key (`tether store rekey`): blobs are otherwise create-only."""
        try:
            obstore.put(self.store, _key(digest), data, mode="overwrite")
        except BaseError as error:
            raise self._failed("write to", error) from None

    async def _exists_async(self, digest: str) -> bool:
        try:
            await obstore.head_async(self.store, _key(digest))
        except FileNotFoundError:
            return False
        except BaseError as error:
            raise self._failed("read from", error) from None
        return True

    def _missing(self, digest: str) -> BlobNotFound:
        return BlobNotFound(f"blob {digest[:12]} is not in {self.where}; several hosts need one "
                            "shared store (TETHER_STORE_URL)")

    def _failed(self, doing: str, error: BaseError) -> StoreError:
        # obstore's messages carry the whole request and a debug dump: the first line says it.
        first = str(error).strip().splitlines()[0][:400] if str(error).strip() else type(error).__name__
        if isinstance(error, PermissionDeniedError | UnauthenticatedError):
            return StoreDenied(f"the store {self.where} refused a {doing.split()[0]} with these "
                               f"credentials: {first}; check the worker's AWS_*, GOOGLE_* or "
                               "AZURE_* variables and their permissions on the bucket")
        return StoreUnavailable(f"could not {doing} the store {self.where}: {first}")


def open_blobs(url: str) -> ObjectBlobs:
    """The backend a store URL names. Credentials, endpoints and options come from each
    cloud's standard variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), read by obstore."""
    check_store_url(url)
    scheme = urlsplit(url).scheme
    root = None
    try:
        if scheme == "file":
            root = Path(unquote(urlsplit(url).path))
            store: ObjectStore = LocalStore(root, mkdir=True)
        elif scheme == "s3":
            store = S3Store.from_url(url, retry_config=RETRIES)  # type: ignore[arg-type]
        elif scheme == "gs":
            store = GCSStore.from_url(url, retry_config=RETRIES)  # type: ignore[arg-type]
        else:
            store = AzureStore.from_url(url, retry_config=RETRIES)  # type: ignore[arg-type]
    except (BaseError, ValueError, OSError) as error:
        raise ValueError(f"the store {url} can't be opened: {str(error).splitlines()[0]}") from None
    return ObjectBlobs(store, where=url, root=root)


def check_store_url(url: str) -> str:
    """The URL, if it names a store tether can use; else a ValueError that says what would."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"{url!r} is not a store URL: use file:///path, s3://bucket/prefix, "
            "gs://bucket/prefix or az://container/prefix")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{url!r}: a file URL needs an absolute path, as file:///srv/tether/store")
    elif not parts.netloc:
        raise ValueError(f"{url!r} names no bucket: {parts.scheme}://BUCKET/PREFIX")
    return url


def file_url(path: Path) -> str:
    return path.resolve().as_uri()


HEX = frozenset("0123456789abcdef")


def _key(digest: str) -> str:
    if len(digest) != 64 or not set(digest) <= HEX:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return f"{digest[:2]}/{digest[2:]}"
