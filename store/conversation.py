"""A conversation as a chain of stored nodes: `{parent, message}`.

The digest of the last node names the whole conversation, so a model activity's input is
one digest plus the few new messages, however long the run has been. Loading walks the
chain back; a small cache of recently loaded heads makes that one read per new node.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from tether.contracts.messages import Message, ToolCall
from tether.store.content import BlobNotFound, ContentStore

CACHE_SIZE = 64


class Conversations:
    """Conversations kept in a content store, with a cache of recently loaded ones."""

    def __init__(self, blobs: ContentStore, *, cache_size: int = CACHE_SIZE) -> None:
        self.blobs = blobs
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[Message, ...]] = OrderedDict()

    def append(self, head: str | None, messages: list[Message]) -> str | None:
        """Stores each message as a node on top of `head`; returns the new head."""
        loaded = self._cache.get(head) if head else ()
        for message in messages:
            node = {"parent": head, "message": message.model_dump(mode="json", exclude_defaults=True)}
            head = self.blobs.put(json.dumps(node, sort_keys=True, separators=(",", ":")).encode())
            if loaded is not None:
                loaded = (*loaded, message)
                self._remember(head, loaded)
        return head

    def load(self, head: str | None) -> list[Message]:
        """The whole conversation ending at `head`, oldest first."""
        newest_first: list[Message] = []
        cursor = head
        prefix: tuple[Message, ...] = ()
        while cursor is not None:
            if cursor in self._cache:
                prefix = self._cache[cursor]
                break
            node = json.loads(self.blobs.get(cursor))
            newest_first.append(Message.model_validate(node["message"]))
            cursor = node["parent"]
        messages = (*prefix, *reversed(newest_first))
        if head is not None:
            self._remember(head, messages)
        return list(messages)

    def message_at(self, node: str) -> Message:
        """The one message a node adds to its conversation."""
        return Message.model_validate(json.loads(self.blobs.get(node))["message"])

    def full_arguments(self, node: str | None, call: ToolCall) -> dict[str, Any]:
        """A call's arguments whole: history holds them capped, the stored assistant message
        (`node`) as the model gave them."""
        if node is None:
            return call.arguments
        for stored in self.message_at(node).tool_calls:
            if stored.id == call.id and stored.name == call.name:
                return stored.arguments
        raise BlobNotFound(f"call {call.id} is not in the stored message {node[:12]}")

    def _remember(self, head: str, messages: tuple[Message, ...]) -> None:
        self._cache[head] = messages
        self._cache.move_to_end(head)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
