"""Content-addressed storage for conversations: what lets history hold each thing once."""

from store.content import ContentStore, LocalContentStore, default_store
from store.conversation import append_messages, load_messages

__all__ = ["ContentStore", "LocalContentStore", "append_messages", "default_store", "load_messages"]
