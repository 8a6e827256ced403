"""Content-addressed storage for conversations: what lets history hold each thing once."""

from tether.store.backends import Blobs, check_store_url, open_blobs
from tether.store.content import ContentAddressed, ContentStore, LocalContentStore, open_store
from tether.store.conversation import Conversations
from tether.store.errors import (
    BlobNotFound,
    ConversationTooLong,
    StoreCorrupt,
    StoreDenied,
    StoreError,
    StoreUnavailable,
)

__all__ = ["BlobNotFound", "Blobs", "ContentAddressed", "ContentStore", "ConversationTooLong",
           "Conversations", "LocalContentStore", "StoreCorrupt", "StoreDenied", "StoreError",
           "StoreUnavailable", "check_store_url", "open_blobs", "open_store"]
