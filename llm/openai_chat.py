"""OpenAI Chat Completions, and every server that speaks it (vLLM, Ollama, LiteLLM, ...).

Uses the official `openai` SDK with its retries off, classifies every failure through
`llm.errors`, and maps tether's provider-neutral messages to and from the wire format. A
streamed answer is put back together by `llm.openai_stream` and read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from tether.contracts import Message, ModelSpec, ModelTurn, ToolCall, ToolSpec, Usage
from tether.llm import errors
from tether.llm.connection import Connection, connection_for
from tether.llm.endpoints import ModelEndpoints
from tether.llm.openai_stream import read_stream
from tether.llm.sdk_client import sdk_client
from tether.llm.tool_arguments import parse_arguments


class OpenAIProvider:
    def __init__(self, *, timeout_seconds: float, endpoints: ModelEndpoints) -> None:
        self.timeout_seconds = timeout_seconds
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
        request: dict[str, Any] = {"model": spec.name, "messages": to_chat_messages(messages)}
        if tools:
            request["tools"] = to_chat_tools(tools)
        response: object
        async with _client(conn) as client:
            if on_text is None:
                response = await client.chat.completions.create(**request)
            else:
                stream = await client.chat.completions.create(
                    **request, stream=True, stream_options={"include_usage": True}
                )
                response = await read_stream(conn, stream, on_text)
        if not isinstance(response, ChatCompletion):
            # The SDK hands back the raw text when the body is not JSON (an HTML error page).
            raise errors.malformed(conn, f"a {type(response).__name__} body")
        try:
            return turn_from(response)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            # Non-strict parsing lets a body of the wrong shape through; reading it fails here
            # (ValueError: pydantic's, for a tool call without a name, say).
            raise errors.malformed(conn, f"{type(exc).__name__} reading it") from None


def _client(conn: Connection) -> AbstractAsyncContextManager[openai.AsyncOpenAI]:
    return sdk_client(openai, openai.AsyncOpenAI, conn)


def to_chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """tether's messages in Chat Completions form; tool arguments travel as JSON strings."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id or "",
                 "content": message.content or ""}
            )
        elif message.role == "assistant" and message.tool_calls:
            out.append({
                "role": "assistant",
                "content": message.content or None,
                "tool_calls": [
                    {"id": call.id, "type": "function",
                     "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
                    for call in message.tool_calls
                ],
            })
        else:
            out.append({"role": message.role, "content": message.content or ""})
    return out


def to_chat_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {
            "name": tool.name, "description": tool.description, "parameters": tool.parameters}}
        for tool in tools
    ]


def turn_from(response: ChatCompletion) -> ModelTurn:
    choice = response.choices[0]
    message = choice.message
    calls = []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:  # a custom (free-form) tool call; tether defines none
            continue
        calls.append(
            ToolCall(id=call.id, name=function.name, arguments=parse_arguments(function.arguments))
        )
    usage = response.usage
    return ModelTurn(
        text=message.content or None,
        tool_calls=calls,
        usage=Usage(
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
        ),
        model=response.model or None,
        finish_reason=choice.finish_reason or None,
    )

