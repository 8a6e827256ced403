"""Content-addressed storage for conversations: what lets history hold each thing once."""

from tether.store.content import BlobNotFound, ContentStore, LocalContentStore
from tether.store.conversation import Conversations

__all__ = ["BlobNotFound", "ContentStore", "Conversations", "LocalContentStore"]
