"""A conversation as a chain of stored nodes: `{parent, message, earlier}`.

The digest of the last node names the whole conversation, so a model activity's input is
one digest plus the few new messages, however long the run has been. Loading walks the
chain back; a small cache of recently loaded heads makes that one read per new node.

A chain is sequential by nature: a node's parent is known only once the node is read. So
each node also names the `BATCH - 1` ancestors past its parent (`earlier`), and a cold load
reads them all at once: one round trip per `BATCH` messages instead of one per message.
Nodes written before `earlier` existed are walked one by one, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from tether.contracts.messages import Message, ToolCall
from tether.store.backends import HEX
from tether.store.content import BlobNotFound, ContentStore
from tether.store.errors import ConversationTooLong, StoreCorrupt

CACHE_SIZE = 64
BATCH = 32
"""Nodes read at once in a cold load; each node names this many ancestors (about 2 KiB)."""
MAX_MESSAGES = 100_000
"""The longest conversation a load walks. No model's context holds more (two million tokens
is 20 a message), so a longer chain is a damaged store, and the walk stops instead of
running on."""


@dataclass(frozen=True)
class Node:
    parent: str | None
    message: Message
    earlier: tuple[str, ...]

    def below(self) -> list[str]:
        """The digests of the nodes under this one, nearest first, as far as it knows."""
        return [] if self.parent is None else [self.parent, *self.earlier]


@dataclass(frozen=True)
class Loaded:
    digests: tuple[str, ...]
    """Oldest first; the last is the head."""
    messages: tuple[Message, ...]


class Conversations:
    """Conversations kept in a content store, with a cache of recently loaded ones. The
    `_async` methods are for async activities: they never block the event loop."""

    def __init__(self, blobs: ContentStore, *, cache_size: int = CACHE_SIZE,
                 max_messages: int = MAX_MESSAGES) -> None:
        self.blobs = blobs
        self.cache_size = cache_size
        self.max_messages = max_messages
        self._cache: OrderedDict[str, Loaded] = OrderedDict()

    def append(self, head: str | None, messages: Sequence[Message]) -> str | None:
        """Stores each message as a node on top of `head`; returns the new head."""
        if not messages:
            return head
        above = self._ancestry(head, None if head is None or head in self._cache
                               else self.blobs.get(head))
        nodes = self._nodes(head, above, messages)
        for _, data in nodes:
            self.blobs.put(data)
        return nodes[-1][0]

    async def append_async(self, head: str | None, messages: Sequence[Message]) -> str | None:
        if not messages:
            return head
        above = self._ancestry(head, None if head is None or head in self._cache
                               else await self.blobs.get_async(head))
        nodes = self._nodes(head, above, messages)
        # Each node's digest is known before it is written, so they go all at once.
        await asyncio.gather(*(self.blobs.put_async(data) for _, data in nodes))
        return nodes[-1][0]

    def load(self, head: str | None) -> list[Message]:
        """The whole conversation ending at `head`, oldest first."""
        walk = Walk(head, self)
        while batch := walk.next_batch():
            walk.take(batch, [self.blobs.get(digest) for digest in batch])
        return self._loaded(head, walk)

    async def load_async(self, head: str | None) -> list[Message]:
        walk = Walk(head, self)
        while batch := walk.next_batch():
            walk.take(batch, await asyncio.gather(*(self.blobs.get_async(d) for d in batch)))
        return self._loaded(head, walk)

    def message_at(self, node: str) -> Message:
        """The one message a node adds to its conversation. A node this process stored or
        loaded is in the cache, its digest made here from that message: a tool call reads
        the assistant message the model activity on its worker stored, with no store read."""
        cached = self._cache.get(node)
        if cached is not None:
            return cached.messages[-1]
        return parse(node, self.blobs.get(node)).message

    async def message_at_async(self, node: str) -> Message:
        cached = self._cache.get(node)
        if cached is not None:
            return cached.messages[-1]
        return parse(node, await self.blobs.get_async(node)).message

    def full_arguments(self, node: str | None, call: ToolCall) -> dict[str, Any]:
        """A call's arguments whole: history holds them capped, the stored assistant message
        (`node`) as the model gave them."""
        return call.arguments if node is None else arguments_in(self.message_at(node), node, call)

    async def full_arguments_async(self, node: str | None, call: ToolCall) -> dict[str, Any]:
        if node is None:
            return call.arguments
        return arguments_in(await self.message_at_async(node), node, call)

    def cached(self, head: str) -> Loaded | None:
        return self._cache.get(head)

    def _ancestry(self, head: str | None, raw: bytes | None) -> list[str]:
        """`head` and the nodes under it, nearest first, as many as a new node names."""
        if head is None:
            return []
        if raw is None:
            return list(reversed(self._cache[head].digests[-BATCH:]))
        return [head, *parse(head, raw).below()][:BATCH]

    def _nodes(self, head: str | None, above: list[str],
               messages: Sequence[Message]) -> list[tuple[str, bytes]]:
        """The nodes that put `messages` on top of `head`, each with its digest."""
        loaded = self._cache.get(head) if head else Loaded((), ())
        nodes: list[tuple[str, bytes]] = []
        for message in messages:
            node: dict[str, Any] = {"parent": head,
                                    "message": message.model_dump(mode="json", exclude_defaults=True)}
            if above[1:]:
                node["earlier"] = above[1:]
            data = json.dumps(node, sort_keys=True, separators=(",", ":")).encode()
            head = hashlib.sha256(data).hexdigest()
            nodes.append((head, data))
            above = [head, *above][:BATCH]
            if loaded is not None:
                loaded = Loaded((*loaded.digests, head), (*loaded.messages, message))
                self._remember(head, loaded)
        return nodes

    def _loaded(self, head: str | None, walk: Walk) -> list[Message]:
        loaded = walk.result()
        if head is not None:
            self._remember(head, loaded)
        return list(loaded.messages)

    def _remember(self, head: str, loaded: Loaded) -> None:
        self._cache[head] = loaded
        self._cache.move_to_end(head)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


class Walk:
    """One load's way down the parent links, fed batches of nodes read at once. It ends at
    the first node without a parent or at a cached head, and fails on a link back to a node
    it has seen or a chain longer than any run makes, so a damaged store can't keep it going."""

    def __init__(self, head: str | None, conversations: Conversations) -> None:
        self.head = head
        self.conversations = conversations
        self.ahead = [] if head is None else [head]
        self.newest_first: list[tuple[str, Message]] = []
        self.seen: set[str] = set()
        self.base = Loaded((), ())
        self.reached_cache = False

    def next_batch(self) -> list[str]:
        """The digests to read now: those known ahead, up to the first already cached."""
        batch = []
        for digest in self.ahead:
            cached = self.conversations.cached(digest)
            if cached is not None:
                self.base, self.reached_cache = cached, True
                break
            batch.append(digest)
        self.ahead = []
        return batch

    def take(self, batch: list[str], raws: Sequence[bytes]) -> None:
        nodes = [parse(digest, raw) for digest, raw in zip(batch, raws, strict=True)]
        for i, (digest, node) in enumerate(zip(batch, nodes, strict=True)):
            if digest in self.seen:
                raise StoreCorrupt(f"the conversation {self._name()} links back to its node "
                                   f"{digest[:12]}: the store was altered")
            if i + 1 < len(batch) and node.parent != batch[i + 1]:
                raise StoreCorrupt(f"node {digest[:12]} of the conversation {self._name()} has "
                                   f"parent {str(node.parent)[:12]}, not {batch[i + 1][:12]} as a "
                                   "later node says: the store was altered")
            if len(self.newest_first) >= self.conversations.max_messages:
                raise ConversationTooLong(
                    f"the conversation {self._name()} goes on past {self.conversations.max_messages} "
                    "messages, more than any run makes: its parent links are damaged")
            self.seen.add(digest)
            self.newest_first.append((digest, node.message))
        if not self.reached_cache:
            self.ahead = nodes[-1].below()

    def result(self) -> Loaded:
        digests = [digest for digest, _ in reversed(self.newest_first)]
        messages = [message for _, message in reversed(self.newest_first)]
        return Loaded((*self.base.digests, *digests), (*self.base.messages, *messages))

    def _name(self) -> str:
        return (self.head or "")[:12]


def parse(digest: str, raw: bytes) -> Node:
    """The node stored as `digest`; one whose links are not digests is refused before
    anything follows them."""
    try:
        node = json.loads(raw)
        parent, earlier = node["parent"], tuple(node.get("earlier", ()))
        links = earlier if parent is None else (parent, *earlier)
        if not all(is_digest(link) for link in links):
            raise ValueError("a link is not a digest")
        return Node(parent=parent, message=Message.model_validate(node["message"]), earlier=earlier)
    except (ValueError, KeyError, TypeError, ValidationError):
        raise StoreCorrupt(f"blob {digest[:12]} is not a conversation node") from None


def is_digest(link: object) -> bool:
    return isinstance(link, str) and len(link) == 64 and set(link) <= HEX


def arguments_in(message: Message, node: str, call: ToolCall) -> dict[str, Any]:
    for stored in message.tool_calls:
        if stored.id == call.id and stored.name == call.name:
            return stored.arguments
    raise BlobNotFound(f"call {call.id} is not in the stored message {node[:12]}")
