"""Answers as the providers stream them, with the tool call's arguments given as raw text
(what the model wrote, malformed or not), for the loopback servers of `tests.llm`."""

from __future__ import annotations

from typing import Any

from tests.endpoints import ENDPOINT_OF
from tests.llm.wire_servers import Flavor, ProviderServer

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}


def openai_chunks(*, text: str | None = None, call: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """`call` is (tool name, raw arguments)."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None,
              usage: dict[str, int] | None = None) -> dict[str, Any]:
        choices = [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODELS["openai"],
                "choices": choices, "usage": usage}

    out = [chunk({"role": "assistant", "content": ""})]
    if text:
        out.append(chunk({"content": text}))
    if call:
        out.append(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                          "function": {"name": call[0], "arguments": call[1]}}]}))
    out.append(chunk({}, finish="tool_calls" if call else "stop"))
    out.append(chunk(None, usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}))
    return out


def anthropic_events(*, text: str | None = None, call: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    message = {"id": "m1", "type": "message", "role": "assistant", "model": MODELS["anthropic"],
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 10, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": message}]
    if text:
        events += [
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            {"type": "content_block_stop", "index": 0}]
    if call:
        events += [
            {"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": "toolu_1", "name": call[0], "input": {}}},
            {"type": "content_block_delta", "index": 1, "delta": {
                "type": "input_json_delta", "partial_json": call[1]}},
            {"type": "content_block_stop", "index": 1}]
    events += [
        {"type": "message_delta", "delta": {"stop_reason": "tool_use" if call else "end_turn",
                                            "stop_sequence": None}, "usage": {"output_tokens": 5}},
        {"type": "message_stop"}]
    return events


def answer(server: ProviderServer, *, text: str | None = None, call: tuple[str, str] | None = None) -> None:
    """Queues one streamed answer in the server's own wire format."""
    build = openai_chunks if server.flavor == "openai" else anthropic_events
    server.reply_stream(build(text=text, call=call))


def model_of(server: ProviderServer) -> dict[str, Any]:
    flavor: Flavor = server.flavor
    return {"provider": flavor, "name": MODELS[flavor], "endpoint": ENDPOINT_OF[flavor]}
