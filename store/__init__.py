"""Content-addressed storage for conversations: what lets history hold each thing once."""

from tether.store.backends import Blobs, StoreUnavailable, check_store_url, open_blobs
from tether.store.content import (
    BlobNotFound,
    ContentAddressed,
    ContentStore,
    LocalContentStore,
    open_store,
)
from tether.store.conversation import Conversations

__all__ = ["BlobNotFound", "Blobs", "ContentAddressed", "ContentStore", "Conversations",
           "LocalContentStore", "StoreUnavailable", "check_store_url", "open_blobs", "open_store"]
