"""How a streamed call fails, for both providers, against a real server and the real SDK.

Before the first event a failure is an HTTP status and is classified as an unstreamed one is;
after it, the answer itself broke (a dropped connection, an error event, silence, garbage)
and retrying is worth it. Each SDK surfaces these differently, so every case runs for both.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from tether.contracts import Message
from tether.llm.provider import PermanentModelError, TransientModelError

from tests.helpers import providers
from tests.llm.wire_servers import Endpoint, KeyCheck

HELLO = [Message(role="system", content="Be brief."), Message(role="user", content="hello")]


def openai_chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def anthropic_text(piece: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}


ANTHROPIC_START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1},
}}


@pytest.fixture
def endpoint(endpoint: Endpoint) -> Endpoint:
    """The shared per-provider endpoint, calling with `on_text`: every call here streams."""
    endpoint.streaming = True
    return endpoint


def opening(flavor: str) -> list[dict[str, Any] | bytes]:
    """The first words of an answer, "Hello, wor", in two events."""
    if flavor == "openai":
        return [openai_chunk(""), openai_chunk("Hello, "), openai_chunk("wor")]
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    return [ANTHROPIC_START, block, anthropic_text("Hello, "), anthropic_text("wor")]


def error_event(flavor: str, message: str) -> dict[str, Any]:
    """The vendor's event for a failure after the answer began."""
    if flavor == "openai":
        return {"error": {"message": message, "type": "server_error", "code": None}}
    return {"type": "error", "error": {"type": "overloaded_error", "message": message}}


def wrong_shape(flavor: str) -> dict[str, Any]:
    """Valid JSON that is not the event it claims to be."""
    if flavor == "openai":
        return {"id": "c1", "choices": [{"index": 0, "delta": "not an object"}]}
    return anthropic_text("x") | {"index": 7}  # a block that was never started


def nameless_call(flavor: str) -> list[dict[str, Any]]:
    """A whole answer whose one tool call never says which tool it calls."""
    if flavor == "openai":
        call = {"index": 0, "id": "call_1", "function": {"arguments": "{}"}}
        return [{**openai_chunk(), "choices": [
            {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}
        ]}]
    block = {"type": "tool_use", "id": "toolu_1", "input": {}}
    return [ANTHROPIC_START, {"type": "content_block_start", "index": 0, "content_block": block},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
             "usage": {"output_tokens": 3}},
            {"type": "message_stop"}]


async def test_a_stream_cut_mid_answer_is_transient_after_showing_what_arrived(
    endpoint: Endpoint,
) -> None:
    endpoint.server.reply_stream(opening(endpoint.flavor), ending="cut")
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert f"the answer from {endpoint.spec.label} at" in str(error)
    assert "broke off mid-stream" in str(error)
    assert endpoint.seen == ["Hello, ", "Hello, wor"]


async def test_a_stream_that_ends_before_its_last_event_is_transient(endpoint: Endpoint) -> None:
    endpoint.server.reply_stream(opening(endpoint.flavor), ending="stop")
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert "broke off mid-stream (the stream ended before" in str(error)


async def test_a_stream_that_goes_silent_past_the_timeout_is_transient(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_MODEL_TIMEOUT_SECONDS", "0.3")
    endpoint.server.reply_stream(opening(endpoint.flavor), ending="stall")
    started = time.monotonic()
    error = await endpoint.failure()
    assert time.monotonic() - started < 3
    assert isinstance(error, TransientModelError)
    assert "did not answer within 0.3 s" in str(error)
    assert endpoint.seen[-1] == "Hello, wor"


async def test_an_error_event_mid_stream_is_transient_and_quotes_the_server(
    endpoint: Endpoint,
) -> None:
    endpoint.server.reply_stream([*opening(endpoint.flavor), error_event(endpoint.flavor, "Overloaded")])
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert "broke off mid-stream (Overloaded" in str(error)


async def test_an_event_that_is_not_json_is_transient(endpoint: Endpoint) -> None:
    garbage = b"data: {not json\n\n" if endpoint.flavor == "openai" else (
        b"event: content_block_delta\ndata: {not json\n\n"
    )
    endpoint.server.reply_stream([*opening(endpoint.flavor), garbage])
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert "sent a response that is not a model answer" in str(error)


async def test_an_event_of_the_wrong_shape_is_transient(endpoint: Endpoint) -> None:
    endpoint.server.reply_stream([*opening(endpoint.flavor), wrong_shape(endpoint.flavor)])
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert "sent a response that is not a model answer" in str(error)


async def test_a_streamed_tool_call_without_a_name_is_transient(endpoint: Endpoint) -> None:
    endpoint.server.reply_stream(nameless_call(endpoint.flavor))
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert "sent a response that is not a model answer" in str(error)


async def test_a_plain_body_where_a_stream_was_asked_for_is_transient(endpoint: Endpoint) -> None:
    endpoint.server.reply_raw(b'{"id": "x", "object": "not a stream"}')
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert "not a model answer (a stream without" in str(error)


async def test_a_429_before_the_stream_starts_still_honours_retry_after(endpoint: Endpoint) -> None:
    endpoint.reply_error(429, "Rate limit reached", headers={"retry-after": "17"})
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert error.retry_after == 17.0
    assert "answered 429: Rate limit reached" in str(error)
    [request] = endpoint.server.requests  # one attempt: the SDK did not retry
    assert request.body["stream"] is True
    assert endpoint.seen == []


async def test_a_400_before_the_stream_starts_is_permanent(endpoint: Endpoint) -> None:
    endpoint.reply_error(400, "Invalid value for 'temperature'")
    error = await endpoint.failure()
    assert isinstance(error, PermanentModelError)
    assert "check the model name and its parameters" in str(error)


async def test_an_error_raised_by_on_text_is_the_callers_not_the_models(
    endpoint: Endpoint,
) -> None:
    endpoint.server.reply_stream(opening(endpoint.flavor), ending="cut")

    def on_text(text: str) -> None:
        raise RuntimeError("the display broke")

    with pytest.raises(RuntimeError, match="the display broke"):
        await providers().get(endpoint.flavor).complete(endpoint.spec, HELLO, [], on_text=on_text)


@pytest.mark.parametrize("failure", ["error-event", "401", "429"])
async def test_the_key_never_appears_in_a_streaming_error_even_when_the_server_echoes_it(
    endpoint: Endpoint, failure: str,
    assert_key_absent: KeyCheck,
) -> None:
    key = endpoint.server.api_key
    echoed = f"request from key {key} refused"
    if failure == "error-event":
        endpoint.server.reply_stream([*opening(endpoint.flavor), error_event(endpoint.flavor, echoed)])
    elif failure == "401":
        endpoint.server.api_key = "sk-the-server-wants-another"  # its 401 echoes the key it got
    else:
        endpoint.reply_error(429, echoed)
    error = await endpoint.failure()
    assert "***" in str(error)
    assert_key_absent(error, key)
