"""`OpenAIProvider` streaming: a real server sends Chat Completions chunks over SSE, the real
SDK reads them, and the turn must be the one the same answer gives unstreamed."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from tether.contracts import BUILTIN_TOOLS, Message, ModelSpec, ModelTurn, ToolCall, Usage

from tests.endpoints import ENDPOINT_OF
from tests.helpers import providers
from tests.llm.wire_servers import ProviderServer

ASK = [Message(role="user", content="go")]
TOOLS = list(BUILTIN_TOOLS.values())


def answer(
    text: str | None = None, calls: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    usage: tuple[int, int] | None = (21, 8),
) -> dict[str, Any]:
    """A whole Chat Completions body, as a plain call receives it."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in calls
        ]
    body: dict[str, Any] = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if calls else "stop"}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                         "total_tokens": sum(usage)}
    return body


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict | None = None
) -> dict[str, Any]:
    """One chunk; without a delta, the usage chunk that has no choices."""
    choices = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    ]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18", "choices": choices, "usage": usage}


def pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def chunks_of(body: dict[str, Any], size: int = 5) -> list[dict[str, Any]]:
    """`body` as OpenAI streams it: the role, the text in pieces, each tool call as a delta
    with its id and name then fragments of its arguments, the finish reason, the usage."""
    choice = body["choices"][0]
    message = choice["message"]
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in pieces(message["content"] or "", size)]
    for index, call in enumerate(message.get("tool_calls", [])):
        head = {"index": index, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}
        out.append(chunk({"tool_calls": [head]}))
        out += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in pieces(call["function"]["arguments"], size)
        ]
    out.append(chunk({}, finish=choice["finish_reason"]))
    if "usage" in body:
        out.append(chunk(usage=body["usage"]))
    return out


def spec_for(server: ProviderServer) -> ModelSpec:
    return ModelSpec(provider="openai", name="gpt-4o-mini", endpoint=ENDPOINT_OF[server.flavor])


async def streamed(server: ProviderServer, seen: list[str] | None = None) -> ModelTurn:
    sink = seen if seen is not None else []
    return await providers().get("openai").complete(spec_for(server), ASK, TOOLS, on_text=sink.append)


async def test_streamed_text_reaches_on_text_in_order_as_it_grows(
    openai_server: ProviderServer,
) -> None:
    openai_server.reply_stream(chunks_of(answer("The answer is 42."), size=6))
    seen: list[str] = []
    turn = await streamed(openai_server, seen)
    assert seen == ["The an", "The answer i", "The answer is 42."]
    assert turn.text == "The answer is 42."
    [request] = openai_server.requests
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


async def test_the_first_words_reach_on_text_while_the_server_holds_back_the_rest(
    openai_server: ProviderServer,
) -> None:
    first_words = threading.Event()
    # After the role and one piece of text the server waits for on_text to have seen it, and
    # drops the stream if that never happens: text buffered to the end fails this test.
    openai_server.reply_stream(
        chunks_of(answer("Thinking about it... done.")), hold=first_words, hold_after=2
    )

    def on_text(text: str) -> None:
        first_words.set()

    turn = await providers().get("openai").complete(spec_for(openai_server), ASK, [], on_text=on_text)
    assert turn.text == "Thinking about it... done."


@pytest.mark.parametrize("body", [
    answer("Plain text, nothing else."),
    answer("Let me look.", [
        ("call_a1", "shell", json.dumps({"command": "ls -la"})),
        ("call_b2", "write_file", json.dumps({"path": "x.txt", "content": "hi\nthere"})),
        ("call_c3", "python", json.dumps({"code": "print(1)"})),
    ]),
    answer(calls=[("call_1", "python", '{"code": "print(1)"'), ("call_2", "read_file", "")]),
    answer("A server that reports no usage.", usage=None),
], ids=["text", "text-and-three-tool-calls", "broken-arguments", "no-usage"])
async def test_a_streamed_turn_is_identical_to_the_same_answer_unstreamed(
    openai_server: ProviderServer, body: dict[str, Any]
) -> None:
    openai_server.reply_json(body)
    openai_server.reply_stream(chunks_of(body, size=3))
    plain = await providers().get("openai").complete(spec_for(openai_server), ASK, TOOLS)
    assert await streamed(openai_server) == plain
    assert plain.text or plain.tool_calls


async def test_tool_calls_interleaved_by_index_are_assembled_each_in_its_place(
    openai_server: ProviderServer,
) -> None:
    def call(index: int, arguments: str, **head: str) -> dict[str, Any]:
        function = {"arguments": arguments, **({"name": head["name"]} if "name" in head else {})}
        return {"index": index, **({"id": head["id"]} if "id" in head else {}), "function": function}

    openai_server.reply_stream([
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [call(0, '{"comm', id="call_0", name="shell")]}),
        chunk({"tool_calls": [call(1, '{"path": ', id="call_1", name="read_file")]}),
        # This server repeats the id in every delta: it is kept, not doubled.
        chunk({"tool_calls": [call(0, 'and": "ls"}', id="call_0")]}),
        chunk({"tool_calls": [call(1, '"a.txt"}')]}),
        chunk({}, finish="tool_calls"),
        chunk(usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}),
    ])
    seen: list[str] = []
    turn = await streamed(openai_server, seen)
    assert turn.tool_calls == [
        ToolCall(id="call_0", name="shell", arguments={"command": "ls"}),
        ToolCall(id="call_1", name="read_file", arguments={"path": "a.txt"}),
    ]
    assert turn.text is None
    assert seen == []  # no text, no callbacks
    assert turn.usage == Usage(input_tokens=50, output_tokens=20)


async def test_the_usage_of_the_last_chunk_is_recorded(openai_server: ProviderServer) -> None:
    openai_server.reply_stream(chunks_of(answer("ok", usage=(1234, 56))))
    turn = await streamed(openai_server)
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (1234, 56)
