"""Anthropic's Messages API through the official `anthropic` SDK, retries off.

The Messages API differs from Chat Completions in three ways that shape the mapping: the
system prompt is a parameter, not a message; tool results are `tool_result` blocks inside a
*user* message; and roles must alternate, so neighbours of the same role are merged. A
streamed answer is put back together by `llm.anthropic_stream` and read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anthropic
from anthropic.types import Message as AnthropicMessage
from tether.contracts import Message, ModelSpec, ModelTurn, ToolCall, ToolSpec, Usage
from tether.llm import errors
from tether.llm.anthropic_stream import read_stream
from tether.llm.connection import Connection, connection_for
from tether.llm.endpoints import ModelEndpoints
from tether.llm.sdk_client import sdk_client


class AnthropicProvider:
    def __init__(self, *, timeout_seconds: float, max_output_tokens: int,
                 endpoints: ModelEndpoints) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_output_tokens = max_output_tokens
        self.endpoints = endpoints

    async def complete(
        self,
        spec: ModelSpec,
        messages: list[Message],
        tools: list[ToolSpec],
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> ModelTurn:
        conn = connection_for(spec, self.endpoints, timeout_seconds=self.timeout_seconds)
        system, conversation = to_anthropic_messages(messages)
        request: dict[str, Any] = {
            "model": spec.name, "max_tokens": self.max_output_tokens, "messages": conversation,
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = to_anthropic_tools(tools)
        response: object
        async with _client(conn) as client:
            if on_text is None:
                response = await client.messages.create(**request)
            else:
                stream = await client.messages.create(**request, stream=True)
                response = await read_stream(conn, stream, on_text)
        if not isinstance(response, AnthropicMessage):
            # The SDK hands back the raw text when the body is not JSON (an HTML error page).
            raise errors.malformed(conn, f"a {type(response).__name__} body")
        try:
            return turn_from(response)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # Non-strict parsing lets a body of the wrong shape through; reading it fails here
            # (ValueError: pydantic's, for a tool_use block without a name, say).
            raise errors.malformed(conn, f"{type(exc).__name__} reading it") from None


def _client(conn: Connection) -> AbstractAsyncContextManager[anthropic.AsyncAnthropic]:
    return sdk_client(anthropic, anthropic.AsyncAnthropic, conn)


def to_anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt, and the conversation as alternating user/assistant messages."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks_of(message)
        if not blocks:  # the API rejects empty content
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for merged in out:
        # Within a user message the API wants tool results before any text.
        merged["content"].sort(key=lambda block: block["type"] != "tool_result")
    return system, out


def _blocks_of(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        if message.content:
            block["content"] = message.content
        return [block]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks += [
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    ]
    return blocks


def to_anthropic_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
        for tool in tools
    ]


def turn_from(response: AnthropicMessage) -> ModelTurn:
    texts = [block.text for block in response.content if block.type == "text"]
    calls = [
        ToolCall(id=block.id, name=block.name, arguments=_arguments(block.input))
        for block in response.content
        if block.type == "tool_use"
    ]
    return ModelTurn(text="\n".join(texts) or None, tool_calls=calls, usage=_usage(response),
                     model=response.model or None, finish_reason=response.stop_reason or None)


def _usage(response: AnthropicMessage) -> Usage:
    usage = response.usage
    if usage is None:  # Anthropic always reports it; some compatible servers do not
        return Usage()
    # Cached prompt tokens are reported apart; a budget counts every token read.
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return Usage(input_tokens=usage.input_tokens + cached, output_tokens=usage.output_tokens)


def _arguments(value: object) -> dict[str, Any]:
    """Tool input is a JSON object by the API's contract; anything else is kept, not dropped."""
    return value if isinstance(value, dict) else {"_raw": json.dumps(value)}
