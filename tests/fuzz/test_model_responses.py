"""Fuzzed model responses over the wire: truncated JSON, fields missing or of the wrong
type, the wrong content type, broken stream events. At the provider, each is a turn or a
classified `ModelError` (transient: retried; permanent: the run fails saying why), never
another exception; in a run, each ends as the next answer after a retry or a failed run
with the reason, never a failing workflow task."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tether import client as tether
from tether.contracts import BUILTIN_TOOLS, ModelSpec
from tether.llm.carriable import carriable
from tether.llm.provider import ModelError

from tests.endpoints import ENDPOINT_OF
from tests.fuzz.health import assert_healthy
from tests.fuzz.strategies import ANY_JSON, odd_text
from tests.fuzz.wire_answers import MODELS, answer, anthropic_events, model_of, openai_chunks
from tests.helpers import providers
from tests.llm.wire_servers import HELLO, ProviderServer

WHOLE = {
    "openai": {"id": "c1", "object": "chat.completion", "created": 1, "model": MODELS["openai"],
               "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                   "role": "assistant", "content": "ok", "tool_calls": [{
                       "id": "call_1", "type": "function",
                       "function": {"name": "shell", "arguments": '{"command": "true"}'}}]}}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    "anthropic": {"id": "m1", "type": "message", "role": "assistant", "model": MODELS["anthropic"],
                  "content": [{"type": "text", "text": "ok"}, {
                      "type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"command": "true"}}],
                  "stop_reason": "tool_use", "stop_sequence": None,
                  "usage": {"input_tokens": 3, "output_tokens": 2}},
}
"""A whole (unstreamed) answer of each provider, to break."""


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value: where a field can go missing or change type."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def broken(value: Any, path: tuple[Any, ...], replacement: Any, drop: bool) -> Any:
    value = json.loads(json.dumps(value))
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    if drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return value


@st.composite
def malformed_bodies(draw: st.DrawFn, whole: Any) -> tuple[bytes, str]:
    """(body, content type): a field dropped or retyped, or the JSON cut short or garbled."""
    kind = draw(st.sampled_from(["field", "truncated", "garbage", "content_type"]))
    text = json.dumps(whole)
    if kind == "field":
        path = draw(st.sampled_from(paths(whole)))
        body = json.dumps(broken(whole, path, draw(ANY_JSON), drop=draw(st.booleans()))).encode()
    elif kind == "truncated":
        body = text[: draw(st.integers(0, len(text) - 1))].encode()
    elif kind == "garbage":
        body = draw(st.one_of(st.binary(max_size=64), odd_text().map(str.encode)))
    else:
        body = text.encode()
    content_type = draw(st.sampled_from(["application/json", "text/html", "text/plain", ""])) \
        if kind == "content_type" else "application/json"
    return body, content_type


async def outcome(server: ProviderServer, *, streaming: bool) -> None:
    """Calls the provider once; returns if it made a turn the run can carry, or raised a
    classified ModelError."""
    spec = ModelSpec(provider=server.flavor, name=MODELS[server.flavor], endpoint=ENDPOINT_OF[server.flavor])
    on_text = (lambda _text: None) if streaming else None
    try:
        turn = await providers().get(server.flavor).complete(
            spec, HELLO, [BUILTIN_TOOLS["shell"]], on_text=on_text)
    except ModelError as error:
        assert str(error), "a model error says what went wrong"
        return
    carried = carriable(turn, step=1)
    for call in carried.tool_calls:
        assert isinstance(call.arguments, dict)
    carried.model_dump_json()  # what the store and history will hold


QUICK = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
@QUICK
@given(data=st.data())
async def test_a_malformed_whole_answer_is_a_turn_or_a_classified_model_error(
    wire_servers: dict[str, ProviderServer], flavor: str, data: st.DataObject,
):
    server = wire_servers[flavor]
    server.replies.clear()
    body, content_type = data.draw(malformed_bodies(WHOLE[flavor]))
    server.reply_raw(body, content_type=content_type)
    await outcome(server, streaming=False)


def stream_events(flavor: str) -> list[dict[str, Any]]:
    call = ("shell", '{"command": "true"}')
    build = openai_chunks if flavor == "openai" else anthropic_events
    return build(text="ok", call=call)


@st.composite
def malformed_streams(draw: st.DrawFn, flavor: str) -> tuple[list[dict[str, Any] | bytes], str]:
    """A stream with one event broken (a field dropped or retyped, or bytes that are not
    an event), or cut short, and how it ends."""
    events: list[dict[str, Any] | bytes] = list(stream_events(flavor))
    index = draw(st.integers(0, len(events) - 1))
    kind = draw(st.sampled_from(["field", "bytes", "cut"]))
    if kind == "field":
        path = draw(st.sampled_from(paths(events[index])))
        events[index] = broken(events[index], path, draw(ANY_JSON), drop=draw(st.booleans()))
    elif kind == "bytes":
        events[index] = b"data: " + draw(st.binary(min_size=1, max_size=40)).replace(b"\n", b" ") + b"\n\n"
    else:
        events = events[:index]
    return [framed(flavor, event) for event in events], draw(st.sampled_from(["finish", "stop", "cut"]))


def framed(flavor: str, event: dict[str, Any] | bytes) -> dict[str, Any] | bytes:
    """Anthropic names each event by its type: one whose type went missing is framed here."""
    if flavor == "anthropic" and isinstance(event, dict) and not isinstance(event.get("type"), str):
        return f"event: unknown\ndata: {json.dumps(event)}\n\n".encode()
    return event


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
@QUICK
@given(data=st.data())
async def test_a_malformed_stream_is_a_turn_or_a_classified_model_error(
    wire_servers: dict[str, ProviderServer], flavor: str, data: st.DataObject,
):
    server = wire_servers[flavor]
    server.replies.clear()
    events, ending = data.draw(malformed_streams(flavor))
    server.reply_stream(events, ending=ending)
    await outcome(server, streaming=True)


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_a_run_given_a_malformed_answer_retries_or_fails_saying_why(
    temporal_client: Client, worker: str, wire_servers: dict[str, ProviderServer],
    flavor: str, data: st.DataObject,
):
    server = wire_servers[flavor]
    server.replies.clear()
    events, ending = data.draw(malformed_streams(flavor))
    server.reply_stream(events, ending=ending)
    answer(server, text="done")
    answer(server, text="done")  # an answer the broken one passed for may ask for a tool
    handle = await tether.start_run(temporal_client, {
        "task": "fuzz", "model": model_of(server), "tools": ["shell"],
        "sandbox": {"tool_timeout_seconds": 10}}, task_queue=worker)
    try:
        result = await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        assert isinstance(cause, ApplicationError) and cause.type == "ModelFailed", cause
        assert cause.message.startswith(f"{flavor}:")
    else:
        assert result.status == "completed"
    await assert_healthy(handle)
