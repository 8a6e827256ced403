"""A conversation as a chain of stored nodes: `{parent, message}`.

The digest of the last node names the whole conversation, so a model activity's input is
one digest plus the few new messages, however long the run has been. Loading walks the
chain back; a small cache of recently loaded heads makes that one read per new node.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from llm.messages import Message
from store.content import ContentStore

_CACHE_SIZE = 64
_cache: OrderedDict[str, tuple[Message, ...]] = OrderedDict()


def append_messages(store: ContentStore, head: str | None, messages: list[Message]) -> str | None:
    """Stores each message as a node on top of `head`; returns the new head."""
    loaded = _cache.get(head) if head else ()
    for message in messages:
        node = {"parent": head, "message": message.model_dump(mode="json", exclude_defaults=True)}
        head = store.put(json.dumps(node, sort_keys=True, separators=(",", ":")).encode())
        if loaded is not None:
            loaded = (*loaded, message)
            _remember(head, loaded)
    return head


def load_messages(store: ContentStore, head: str | None) -> list[Message]:
    """The whole conversation ending at `head`, oldest first."""
    newest_first: list[Message] = []
    cursor = head
    prefix: tuple[Message, ...] = ()
    while cursor is not None:
        if cursor in _cache:
            prefix = _cache[cursor]
            break
        node = json.loads(store.get(cursor))
        newest_first.append(Message.model_validate(node["message"]))
        cursor = node["parent"]
    messages = (*prefix, *reversed(newest_first))
    if head is not None:
        _remember(head, messages)
    return list(messages)


def load_node_message(store: ContentStore, node: str) -> Message:
    """The one message a node adds to its conversation."""
    return Message.model_validate(json.loads(store.get(node))["message"])


def _remember(head: str, messages: tuple[Message, ...]) -> None:
    _cache[head] = messages
    _cache.move_to_end(head)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
