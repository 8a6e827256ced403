"""`AnthropicProvider` streaming: a real server sends Messages API events over SSE, the real
SDK reads them, and the turn must be the one the same answer gives unstreamed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tether.contracts import BUILTIN_TOOLS, Message, ModelSpec, ModelTurn, ToolCall, Usage

from tests.endpoints import ENDPOINT_OF
from tests.helpers import providers
from tests.llm.wire_servers import ProviderServer

ASK = [Message(role="user", content="go")]
TOOLS = list(BUILTIN_TOOLS.values())


def answer(*blocks: dict[str, Any], usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A whole Messages API body, as a plain call receives it."""
    return {
        "id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-3-5-haiku-20241022", "content": list(blocks),
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 30, "output_tokens": 9},
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def delta(index: int, kind: str, **fields: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": kind, **fields}}


def pieces(value: str, size: int) -> list[str]:
    return [value[i:i + size] for i in range(0, len(value), size)]


def events_of(body: dict[str, Any], size: int = 5) -> list[dict[str, Any]]:
    """`body` as Anthropic streams it: the message with the prompt's tokens, each block
    started, filled by deltas and stopped, then the stop reason and output tokens."""
    start = {**body, "content": [], "stop_reason": None,
             "usage": {**body["usage"], "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(body["content"]):
        if block["type"] == "text":
            events.append({"type": "content_block_start", "index": index, "content_block": text("")})
            events += [delta(index, "text_delta", text=p) for p in pieces(block["text"], size)]
        else:
            empty = {**block, "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": empty})
            fragments = ["", *pieces(json.dumps(block["input"]), size)]  # the API opens with ""
            events += [delta(index, "input_json_delta", partial_json=p) for p in fragments]
        events.append({"type": "content_block_stop", "index": index})
    events.append({
        "type": "message_delta",
        "delta": {"stop_reason": body["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": body["usage"]["output_tokens"]},
    })
    events.append({"type": "message_stop"})
    return events


def spec_for(server: ProviderServer) -> ModelSpec:
    return ModelSpec(provider="anthropic", name="claude-3-5-haiku-latest",
                     endpoint=ENDPOINT_OF[server.flavor])


async def streamed(server: ProviderServer, seen: list[str] | None = None) -> ModelTurn:
    sink = seen if seen is not None else []
    return await providers().get("anthropic").complete(
        spec_for(server), ASK, TOOLS, on_text=sink.append
    )


async def test_streamed_text_reaches_on_text_in_order_as_it_grows(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_stream(events_of(answer(text("Paris, of course.")), size=6))
    seen: list[str] = []
    turn = await streamed(anthropic_server, seen)
    assert seen == ["Paris,", "Paris, of co", "Paris, of course."]
    assert turn.text == "Paris, of course."
    assert anthropic_server.requests[0].body["stream"] is True


@pytest.mark.parametrize("body", [
    answer(text("Plain text, nothing else.")),
    answer(
        text("I'll look around."),
        tool_use("toolu_01", "shell", {"command": "ls -la"}),
        tool_use("toolu_02", "write_file", {"path": "notes.md", "content": "a\n\"quoted\""}),
        tool_use("toolu_03", "python", {"code": "print(1)"}),
    ),
    answer(text("First."), text("Second."), tool_use("toolu_9", "read_file", {})),
    answer(text("cached"), usage={"input_tokens": 10, "output_tokens": 5,
                                  "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}),
], ids=["text", "text-and-three-tool-calls", "two-text-blocks-and-a-call-without-input", "cache"])
async def test_a_streamed_turn_is_identical_to_the_same_answer_unstreamed(
    anthropic_server: ProviderServer, body: dict[str, Any]
) -> None:
    anthropic_server.reply_json(body)
    anthropic_server.reply_stream(events_of(body, size=4))
    plain = await providers().get("anthropic").complete(spec_for(anthropic_server), ASK, TOOLS)
    assert await streamed(anthropic_server) == plain
    assert plain.text or plain.tool_calls


async def test_several_tool_uses_are_assembled_from_their_json_fragments(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_stream(events_of(answer(
        text("Two things."),
        tool_use("toolu_a", "shell", {"command": "date"}),
        tool_use("toolu_b", "write_file", {"path": "out/x.txt", "content": "ünïcode ✓"}),
    ), size=3))
    seen: list[str] = []
    turn = await streamed(anthropic_server, seen)
    assert turn.tool_calls == [
        ToolCall(id="toolu_a", name="shell", arguments={"command": "date"}),
        ToolCall(id="toolu_b", name="write_file",
                 arguments={"path": "out/x.txt", "content": "ünïcode ✓"}),
    ]
    assert seen == ["Two", "Two th", "Two thing", "Two things."]  # never the tool input


async def test_text_in_two_blocks_reaches_on_text_joined_as_in_the_final_turn(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_stream(events_of(answer(text("One."), text("Two.")), size=10))
    seen: list[str] = []
    turn = await streamed(anthropic_server, seen)
    assert seen == ["One.", "One.\nTwo."]
    assert turn.text == seen[-1]


async def test_usage_comes_from_message_start_and_message_delta(
    anthropic_server: ProviderServer,
) -> None:
    events = events_of(answer(text("ok"), usage={"input_tokens": 812, "output_tokens": 64}))
    anthropic_server.reply_stream(events)
    turn = await streamed(anthropic_server)
    assert turn.usage == Usage(input_tokens=812, output_tokens=64)


async def test_counts_in_message_delta_replace_those_of_message_start(
    anthropic_server: ProviderServer,
) -> None:
    events = events_of(answer(text("ok"), usage={"input_tokens": 5, "output_tokens": 70}))
    # Newer servers repeat every count, cumulative, in message_delta.
    events[-2]["usage"] = {"input_tokens": 500, "output_tokens": 70, "cache_read_input_tokens": 20}
    anthropic_server.reply_stream(events)
    turn = await streamed(anthropic_server)
    assert turn.usage == Usage(input_tokens=520, output_tokens=70)


async def test_malformed_streamed_tool_input_is_kept_raw_instead_of_failing_the_turn(
    anthropic_server: ProviderServer,
) -> None:
    """As on OpenAI: the tool tells the model its arguments were not JSON, and the model can
    correct itself; the model call is not retried for what the model wrote."""
    events = events_of(answer(
        tool_use("toolu_a", "python", {"code": "print(1)"}),
        tool_use("toolu_b", "shell", {"command": "date"}),
        tool_use("toolu_c", "read_file", {"path": "x"}),
    ), size=400)
    unclosed, nested_too_deep, not_an_object = '{"code": "print(1)"', "[" * 5000 + "]" * 5000, "[1, 2]"
    fragments = [e for e in events if e["type"] == "content_block_delta" and e["delta"]["partial_json"]]
    for event, raw in zip(fragments, (unclosed, nested_too_deep, not_an_object), strict=True):
        event["delta"]["partial_json"] = raw
    anthropic_server.reply_stream(events)
    turn = await streamed(anthropic_server)
    assert [call.arguments for call in turn.tool_calls] == [
        {"_raw": unclosed}, {"_raw": nested_too_deep}, {"_raw": not_an_object}]
