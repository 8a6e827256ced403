"""store/conversation.py: a tool call reads its whole arguments from the assistant message the
model activity stored. On the worker that stored it, the conversation's cache already holds
that message: no read goes to the store. Elsewhere the read goes to the store, checked
against its name. A local file store under a temporary directory; no Temporal, no Docker."""

from __future__ import annotations

from pathlib import Path

from tether.contracts import Message, ToolCall
from tether.store import Conversations
from tether.store.backends import Blobs, file_url, open_blobs
from tether.store.content import ContentAddressed

WHOLE = {"path": "notes.txt", "content": "y" * 5000}


class CountingBlobs:
    """The real file backend, counting the reads that reach it."""

    def __init__(self, inner: Blobs) -> None:
        self.inner, self.where, self.reads = inner, inner.where, 0

    def put(self, digest: str, data: bytes) -> None:
        self.inner.put(digest, data)

    def get(self, digest: str) -> bytes:
        self.reads += 1
        return self.inner.get(digest)

    def exists(self, digest: str) -> bool:
        return self.inner.exists(digest)

    async def put_async(self, digest: str, data: bytes) -> None:
        await self.inner.put_async(digest, data)

    async def get_async(self, digest: str) -> bytes:
        self.reads += 1
        return await self.inner.get_async(digest)


async def stored_call(conversations: Conversations) -> tuple[str, ToolCall]:
    """An assistant message asking for a call whose arguments history would hold cut."""
    call = ToolCall(id="call_1", name="write_file", arguments=WHOLE)
    head = await conversations.append_async(None, [
        Message(role="user", content="write it"),
        Message(role="assistant", content="writing", tool_calls=[call])])
    assert head is not None
    return head, call.model_copy(update={"arguments": {"path": "notes.txt", "content": "y…"}})


async def test_the_worker_that_stored_a_call_reads_its_arguments_without_the_store(tmp_path: Path):
    blobs = CountingBlobs(open_blobs(file_url(tmp_path)))
    conversations = Conversations(ContentAddressed(blobs))
    head, capped = await stored_call(conversations)
    assert await conversations.full_arguments_async(head, capped) == WHOLE
    assert blobs.reads == 0


async def test_another_worker_reads_a_calls_arguments_from_the_store(tmp_path: Path):
    head, capped = await stored_call(Conversations(ContentAddressed(open_blobs(file_url(tmp_path)))))
    blobs = CountingBlobs(open_blobs(file_url(tmp_path)))
    assert await Conversations(ContentAddressed(blobs)).full_arguments_async(head, capped) == WHOLE
    assert blobs.reads == 1
