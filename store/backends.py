"""Where the content store's bytes live, chosen by URL: a local directory, or an object store
that every host reaches (S3 and S3-compatible stores, Google Cloud Storage, Azure Blob).

One library, obstore, speaks to all of them, so tether keeps no client of its own per cloud.
A backend knows blobs only by digest and never changes one it holds; that narrow interface
(`Blobs`) is what wrappers such as encryption compose with.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, NotSupportedError
from obstore.store import AzureStore, GCSStore, LocalStore, ObjectStore, S3Store

SCHEMES = ("file", "s3", "gs", "az")
"""What TETHER_STORE_URL may name."""

# Temporal owns retries: a store that stays away fails the activity, whose retries are in
# the history. A few quick retries inside one call ride out a dropped connection without
# redoing a whole model call for it.
RETRIES = {"max_retries": 2, "retry_timeout": timedelta(seconds=10),
           "backoff": {"init_backoff": timedelta(milliseconds=100),
                       "max_backoff": timedelta(seconds=2), "base": 2.0}}


class BlobNotFound(LookupError):
    """A digest the store does not hold: the store was wiped or is not shared between hosts."""


class StoreUnavailable(ConnectionError):
    """The store could not be read or written (unreachable, refused credentials, no bucket)."""


class Blobs(Protocol):
    """Immutable bytes by digest. `put` is idempotent: a digest already held is left alone."""

    where: str
    """The store's URL, for messages."""

    def put(self, digest: str, data: bytes) -> None: ...
    def get(self, digest: str) -> bytes: ...
    def exists(self, digest: str) -> bool: ...


class ObjectBlobs:
    """Blobs as objects `<digest[:2]>/<digest[2:]>` under the store's prefix: the same layout
    as the directory store has always had, so an existing store reads as before."""

    def __init__(self, store: ObjectStore, *, where: str) -> None:
        self.store = store
        self.where = where

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
            raise self._unavailable("write to", error) from None

    def get(self, digest: str) -> bytes:
        key = _key(digest)
        try:
            return bytes(obstore.get(self.store, key).bytes())
        except FileNotFoundError:
            raise BlobNotFound(
                f"blob {digest[:12]} is not in {self.where}; several hosts need one shared "
                "store (TETHER_STORE_URL)") from None
        except BaseError as error:
            raise self._unavailable("read from", error) from None

    def exists(self, digest: str) -> bool:
        try:
            obstore.head(self.store, _key(digest))
        except FileNotFoundError:
            return False
        except BaseError as error:
            raise self._unavailable("read from", error) from None
        return True

    def _unavailable(self, doing: str, error: BaseError) -> StoreUnavailable:
        # obstore's messages carry the whole request and a debug dump: the first line says it.
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return StoreUnavailable(f"could not {doing} the store {self.where}: {first[:400]}")


def open_blobs(url: str) -> ObjectBlobs:
    """The backend a store URL names. Credentials, endpoints and options come from each
    cloud's standard variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), read by obstore."""
    check_store_url(url)
    scheme = urlsplit(url).scheme
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
    return ObjectBlobs(store, where=url)


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


def _key(digest: str) -> str:
    if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return f"{digest[:2]}/{digest[2:]}"
