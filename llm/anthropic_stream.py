"""A streamed Messages API answer, put back together into the `Message` a plain call returns.

The events: `message_start` (the message, with the prompt's tokens), then per content block
a `content_block_start`, its `content_block_delta`s (`text_delta`, or `input_json_delta`
fragments of a tool_use block's input) and a `content_block_stop`; then `message_delta`
(the stop reason and cumulative usage) and `message_stop`. The assembled message is read by
the same `turn_from` as a plain answer, so streaming cannot change what a turn says.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncStream
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from tether.llm import errors
from tether.llm.connection import Connection
from tether.llm.tool_arguments import parse_arguments


async def read_stream(
    conn: Connection, stream: AsyncStream[RawMessageStreamEvent], on_text: Callable[[str], None]
) -> AnthropicMessage:
    """Read the whole stream, telling `on_text` the text so far whenever it grows."""
    answer = MessageAssembler()
    async with aclosing(_events(conn, stream)) as events:
        async for event in events:
            try:
                grew = answer.add(event)
            except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
                # Events are parsed leniently, so one of the wrong shape fails only when read.
                raise errors.malformed(conn, f"{type(exc).__name__} reading an event") from None
            if grew:
                on_text(answer.text)
    if answer.body is None:
        raise errors.malformed(conn, "a stream without a message_start event")
    if not answer.stopped:
        # The SDK ends quietly when the body does: a proxy that closed the stream early
        # would otherwise pass off half an answer as the whole one.
        raise errors.broke_off(conn, "the stream ended before message_stop")
    return answer.message()


async def _events(
    conn: Connection, stream: AsyncStream[RawMessageStreamEvent]
) -> AsyncGenerator[RawMessageStreamEvent, None]:
    """The stream's events, its failures classified. Kept apart from the loop that calls
    `on_text`, so that an error raised by the caller's callback is never taken for the stream's."""
    try:
        async with stream:
            async for event in stream:
                yield event
    # The SDK lets its transport's errors out of a stream unwrapped, hence httpx2's classes.
    except (anthropic.APITimeoutError, httpx2.TimeoutException):
        raise errors.timed_out(conn) from None
    except (anthropic.APIConnectionError, httpx2.RequestError) as exc:
        raise errors.broke_off(conn, exc.__cause__ or exc) from None
    except (anthropic.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.malformed(conn, f"{type(exc).__name__} in the stream") from None
    except anthropic.APIStatusError as exc:
        # An `error` event (`overloaded_error`, say): the SDK raises it as a status error with
        # the stream's 200, but the request was accepted; it is the answer that failed.
        raise errors.broke_off(conn, exc.body) from None


class MessageAssembler:
    """Collects events into a Messages API body, as the server would have sent it whole."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.tool_json: dict[int, str] = {}
        self.stopped = False

    @property
    def text(self) -> str:
        """The text so far, joined as `turn_from` joins a finished message's text blocks."""
        return "\n".join(block["text"] for block in self._content() if block["type"] == "text")

    def add(self, event: RawMessageStreamEvent) -> bool:
        """Take one event; True when it added text."""
        if event.type == "message_start":
            self.body = event.message.to_dict()
            return False
        if self.body is None:
            raise ValueError(f"{event.type} before message_start")
        if event.type == "content_block_start":
            block = self.blocks[event.index] = event.content_block.to_dict()
            return bool(block.get("text"))
        if event.type == "content_block_delta":
            return self._add_delta(event.index, event.delta)
        if event.type == "message_delta":
            self.body["stop_reason"] = event.delta.stop_reason
            usage = self.body.get("usage") or {"input_tokens": 0, "output_tokens": 0}
            # Counts here are cumulative totals that replace the start's; absent ones keep it.
            usage.update({k: v for k, v in event.usage.to_dict().items() if v is not None})
            self.body["usage"] = usage
        elif event.type == "message_stop":
            self.stopped = True
        return False

    def _add_delta(self, index: int, delta: Any) -> bool:
        block = self.blocks[index]
        if delta.type == "text_delta" and block["type"] == "text":
            block["text"] += delta.text
            return True
        if delta.type == "input_json_delta":
            self.tool_json[index] = self.tool_json.get(index, "") + delta.partial_json
        # Thinking, signature and citation deltas are not part of a tether turn.
        return False

    def message(self) -> AnthropicMessage:
        for index, raw in self.tool_json.items():
            # A tool without arguments streams no fragments, or an empty one: its start's input stays.
            if raw.strip():
                self.blocks[index]["input"] = parse_arguments(raw)
        # `construct`, as the SDK itself builds a response: no validation to trip on a
        # compatible server's unusual stop reason.
        return AnthropicMessage.construct(**{**(self.body or {}), "content": self._content()})

    def _content(self) -> list[dict[str, Any]]:
        return [block for _, block in sorted(self.blocks.items())]
