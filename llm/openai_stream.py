"""A streamed Chat Completions answer, put back together into the body a plain call returns.

Chunks carry deltas: content to append, and tool calls keyed by `index`, whose first delta
holds the call's id and name and the rest fragments of its JSON arguments. With
`stream_options={"include_usage": True}` the tokens come last, in a chunk without choices.
The assembled body is read by the same `turn_from` as a plain answer, so streaming cannot
change what a turn says; it only changes when the text becomes visible.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall
from tether.llm import errors
from tether.llm.connection import Connection


async def read_stream(
    conn: Connection, stream: AsyncStream[ChatCompletionChunk], on_text: Callable[[str], None]
) -> ChatCompletion:
    """Read the whole stream, telling `on_text` the text so far whenever it grows."""
    answer = CompletionAssembler()
    async with aclosing(_chunks(conn, stream)) as chunks:
        async for chunk in chunks:
            try:
                grew = answer.add(chunk)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                # Chunks are parsed leniently, so one of the wrong shape fails only when read.
                raise errors.malformed(conn, f"{type(exc).__name__} reading a chunk") from None
            if grew:
                on_text(answer.text)
    if not answer.chunks:
        raise errors.malformed(conn, "a stream without a single event")
    if answer.finish_reason is None:
        # The SDK ends quietly when the body does, `[DONE]` or not: a proxy that closed the
        # stream early would otherwise pass off half an answer as the whole one.
        raise errors.broke_off(conn, "the stream ended before the answer was finished")
    try:
        return answer.completion()
    except ValueError as exc:
        raise errors.malformed(conn, str(exc)) from None


async def _chunks(
    conn: Connection, stream: AsyncStream[ChatCompletionChunk]
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """The stream's chunks, its failures classified. Kept apart from the loop that calls
    `on_text`, so that an error raised by the caller's callback is never taken for the stream's."""
    try:
        async with stream:
            async for chunk in stream:
                yield chunk
    except openai.APITimeoutError:
        raise errors.timed_out(conn) from None
    except openai.APIConnectionError as exc:
        raise errors.broke_off(conn, exc.__cause__ or exc) from None
    except (openai.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.malformed(conn, f"{type(exc).__name__} in the stream") from None
    except openai.APIError as exc:  # an error event: the server failed after it began answering
        raise errors.broke_off(conn, exc.body or exc.message) from None


class CompletionAssembler:
    """Collects chunks into the parts of a Chat Completions body that `turn_from` reads."""

    def __init__(self) -> None:
        self.text = ""
        self.calls: dict[int, dict[str, str]] = {}
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.model: str | None = None
        """The model the provider says answered: every chunk names it."""
        self.chunks = 0

    def add(self, chunk: ChatCompletionChunk) -> bool:
        """Take one chunk; True when it added text."""
        self.chunks += 1
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = chunk.usage.to_dict()
        grew = False
        for choice in chunk.choices:
            if choice.index != 0:  # tether asks for one choice; any other is not its answer
                continue
            if choice.delta.content:
                self.text += choice.delta.content
                grew = True
            for call in choice.delta.tool_calls or []:
                self._add_call(call)
            self.finish_reason = choice.finish_reason or self.finish_reason
        return grew

    def _add_call(self, delta: ChoiceDeltaToolCall) -> None:
        call = self.calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        # An id and a name arrive whole, in a call's first delta; some compatible servers
        # repeat them in every delta, so they are set, never appended to.
        call["id"] = delta.id or call["id"]
        if delta.function is not None:
            call["name"] = delta.function.name or call["name"]
            call["arguments"] += delta.function.arguments or ""

    def completion(self) -> ChatCompletion:
        calls = [call for _, call in sorted(self.calls.items())]
        if any(not call["name"] for call in calls):
            raise ValueError("a tool call without a name")
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if calls:
            message["tool_calls"] = [
                {"id": call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": call["arguments"]}}
                for call in calls
            ]
        # `construct`, as the SDK itself builds a response: no validation to trip on a
        # compatible server's unusual finish reason.
        return ChatCompletion.construct(
            object="chat.completion", model=self.model or "",
            choices=[{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            usage=self.usage,
        )
