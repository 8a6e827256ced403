"""Whole AgentRuns driven by real provider SDKs against loopback servers that speak the
providers' wire protocols: a real dev server, a real worker, real sandboxes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether

from tests.endpoints import ENDPOINT_OF, TEAM_KEY_ENV
from tests.helpers import history_text, run_command
from tests.llm.wire_servers import ProviderServer


def openai_chunks(text: str | None = None, calls: list[tuple[str, str, dict]] = (),  # type: ignore[assignment]
                  usage: tuple[int, int] = (40, 10)) -> list[dict[str, Any]]:
    """One Chat Completions answer as OpenAI streams it."""
    def chunk(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> dict:
        choices = [] if delta is None else [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": choices, "usage": usage}

    out = [chunk({"role": "assistant", "content": ""})]
    if text:
        out += [chunk({"content": text[i:i + 8]}) for i in range(0, len(text), 8)]
    for index, (call_id, name, arguments) in enumerate(calls):
        out.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                          "function": {"name": name,
                                                       "arguments": json.dumps(arguments)}}]}))
    out.append(chunk({}, finish="tool_calls" if calls else "stop"))
    out.append(chunk(None, usage={"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                  "total_tokens": sum(usage)}))
    return out


def anthropic_events(text: str, calls: list[tuple[str, str, dict]] = ()  # type: ignore[assignment]
                     ) -> list[dict[str, Any]]:
    """One Messages API answer as Anthropic streams it."""
    message = {"id": "m1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest",
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 30, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
    ]
    for index, (call_id, name, arguments) in enumerate(calls, start=1):
        events += [
            {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": call_id, "name": name, "input": {}}},
            {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(arguments)}},
            {"type": "content_block_stop", "index": index},
        ]
    return [*events,
            {"type": "message_delta", "delta": {"stop_reason": "tool_use" if calls else "end_turn",
                                                "stop_sequence": None}, "usage": {"output_tokens": 9}},
            {"type": "message_stop"}]


def answered_calls(flavor: str, request: dict[str, Any]) -> dict[str, tuple[dict, dict]]:
    """What a request sent back to the provider: each call's id, with the arguments the
    assistant message gave it and the result matched to it by that id."""
    if flavor == "openai":
        messages = request["messages"]
        [assistant] = [m for m in messages if m["role"] == "assistant"]
        sent = [(c["id"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]]
        results = {m["tool_call_id"]: json.loads(m["content"]) for m in messages if m["role"] == "tool"}
    else:
        blocks = [b for m in request["messages"] for b in m["content"]]
        sent = [(b["id"], b["input"]) for b in blocks if b["type"] == "tool_use"]
        results = {b["tool_use_id"]: json.loads(b["content"]) for b in blocks if b["type"] == "tool_result"}
    assert len({call_id for call_id, _ in sent}) == len(sent) == len(results)
    return {call_id: (arguments, results[call_id]) for call_id, arguments in sent}


def run_input(server: ProviderServer, **extra: Any) -> dict[str, Any]:
    """A run on the OpenAI `server`, by the name the suite's worker configured it under."""
    return {"task": "What is 6 * 7? Use python.",
            "model": {"provider": "openai", "name": "gpt-4o-mini", "endpoint": ENDPOINT_OF[server.flavor]},
            **extra}


async def test_an_openai_run_calls_tools_and_answers_with_what_they_returned(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    openai_server.reply_stream(openai_chunks("Computing.", [
        ("call_1", "python", {"code": "print(6 * 7)"}),
        ("call_2", "shell", {"command": "echo $((6 * 7))"}),
    ]))
    openai_server.reply_stream(openai_chunks("6 * 7 = 42"))
    result = await tether.run(temporal_client, run_input(openai_server), task_queue=worker)
    assert result.status == "completed"
    assert result.output == "6 * 7 = 42"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (80, 20)
    # The second request carried both tool results, computed in the sandbox.
    second = openai_server.requests[1].body["messages"]
    results = {m["tool_call_id"]: json.loads(m["content"]) for m in second if m["role"] == "tool"}
    assert results["call_1"]["stdout"] == "42\n"
    assert results["call_2"]["stdout"] == "42\n"


async def test_a_fallback_model_serves_the_step_when_the_primary_fails_permanently(
    temporal_client: Client, worker: str, openai_server: ProviderServer,
    anthropic_server: ProviderServer,
):
    openai_server.reply_json({"error": {"message": "model gpt-4o-mini does not exist",
                                        "type": "invalid_request_error", "code": None}}, status=400)
    anthropic_server.reply_stream(anthropic_events("Served by the fallback."))
    handle = await tether.start_run(temporal_client, run_input(
        openai_server, fallback_models=[{"provider": "anthropic", "name": "claude-3-5-haiku-latest",
                                         "endpoint": "wire-anthropic"}]),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "completed"
    assert result.output == "Served by the fallback."
    [step] = await tether.get_transcript(temporal_client, handle.id)
    assert step.model == "anthropic:claude-3-5-haiku-latest"
    assert "openai:gpt-4o-mini" in (step.note or "") and "400" in (step.note or "")


async def test_a_rate_limited_call_is_retried_by_temporal_after_retry_after(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    openai_server.reply_json({"error": {"message": "slow down", "type": "rate_limit", "code": None}},
                             status=429, headers={"retry-after": "2"})
    openai_server.reply_stream(openai_chunks("after the wait"))
    handle = await tether.start_run(temporal_client, run_input(openai_server), task_queue=worker)
    result = await handle.result()
    assert result.output == "after the wait"
    assert len(openai_server.requests) == 2
    events = [e async for e in handle.fetch_history_events()]
    scheduled = next(e for e in events if e.HasField("activity_task_scheduled_event_attributes")
                     and e.activity_task_scheduled_event_attributes.activity_type.name == "model_call")
    started = next(e for e in events if e.HasField("activity_task_started_event_attributes")
                   and e.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id)
    # Temporal retried the call itself (the SDK's retries are off), after the server's delay.
    attributes = started.activity_task_started_event_attributes
    assert attributes.attempt == 2
    assert "429" in attributes.last_failure.message
    waited = started.event_time.ToDatetime() - scheduled.event_time.ToDatetime()
    assert waited.total_seconds() >= 2


async def test_no_api_key_reaches_the_runs_history(
    temporal_client: Client, worker: str, openai_server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
):
    secret = f"sk-never-in-history-{uuid.uuid4().hex}"
    monkeypatch.setenv(TEAM_KEY_ENV, secret)
    openai_server.api_key = secret
    openai_server.reply_stream(openai_chunks("fine"))
    handle = await tether.start_run(
        temporal_client,
        run_input(openai_server, model={"provider": "openai", "name": "gpt-4o-mini",
                                        "endpoint": "wire-openai-team"}),
        task_queue=worker)
    assert (await handle.result()).output == "fine"
    assert openai_server.requests[0].key == secret  # the key did reach the provider
    history = await history_text(handle)
    assert secret not in history
    # Only the endpoint's name travels: its key variable is the worker's to know.
    assert "wire-openai-team" in history and TEAM_KEY_ENV not in history


async def test_a_wrong_key_fails_the_run_at_once_without_showing_the_key(
    temporal_client: Client, worker: str, openai_server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
):
    wrong = f"sk-wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    handle = await tether.start_run(temporal_client, run_input(openai_server), task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert "401" in str(failure.value.cause) and "OPENAI_API_KEY" in str(failure.value.cause)
    assert len(openai_server.requests) == 1  # permanent: not retried
    assert wrong not in await history_text(handle)


async def test_streamed_partial_text_is_visible_in_the_heartbeat_and_through_tether(
    temporal_client: Client, temporal_address: str, worker: str, openai_server: ProviderServer
):
    release = threading.Event()
    openai_server.reply_stream(openai_chunks("Thinking out loud for a long while... 42."),
                               hold=release, hold_after=3)
    handle = await tether.start_run(temporal_client, run_input(openai_server), task_queue=worker)
    try:
        # The server holds the stream after "Thinking out lou": that text, and no more,
        # must reach the pending activity's heartbeat details while the call is in flight.
        partial = None
        for _ in range(300):
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].heartbeat_details.payloads:
                partial = json.loads(pending[0].heartbeat_details.payloads[0].data).get(
                    "partial_text")
                if partial == "Thinking out lou":
                    break
            await asyncio.sleep(0.1)
        assert partial == "Thinking out lou"
        assert await tether.partial_text(temporal_client, handle.id) == "Thinking out lou"
        code, out, err = await run_command(
            f"{sys.executable} -m tether.cli status {handle.id} --json",
            env={**os.environ, "TEMPORAL_ADDRESS": temporal_address})
        assert code == 0, err
        assert json.loads(out)["partial_text"] == "Thinking out lou"
    finally:
        release.set()
    result = await handle.result()
    assert result.output == "Thinking out loud for a long while... 42."


async def test_a_cost_budget_on_a_model_with_no_known_price_is_refused_at_start(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    local = {"provider": "openai", "name": "my-local-model", "endpoint": "wire-openai"}
    handle = await tether.start_run(
        temporal_client, run_input(openai_server, model=local, budget={"max_cost_usd": 1.0}),
        task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    message = str(failure.value.cause)
    assert "max_cost_usd can't be enforced" in message and "openai:my-local-model" in message
    assert openai_server.requests == []  # refused before any money was spent


async def test_a_price_in_the_input_makes_a_cost_budget_enforceable(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    priced = {"provider": "openai", "name": "my-local-model", "endpoint": "wire-openai",
              "price": {"input_per_mtok_usd": 1_000_000, "output_per_mtok_usd": 1_000_000}}
    openai_server.reply_stream(openai_chunks("one", [("c1", "shell", {"command": "true"})]))
    openai_server.reply_stream(openai_chunks("never asked"))
    result = await tether.run(
        temporal_client, run_input(openai_server, model=priced, budget={"max_cost_usd": 30.0}),
        task_queue=worker)
    # 40 + 10 tokens at $1 a token: $50 after the first call, over the $30 budget.
    assert result.status == "budget_exhausted"
    assert result.usage.cost_usd == pytest.approx(50.0)
    assert "max_cost_usd" in result.stop_reason
    assert result.cost_known


async def test_a_run_on_an_unpriced_model_says_its_cost_is_unknown(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    local = {"provider": "openai", "name": "my-local-model", "endpoint": "wire-openai"}
    openai_server.reply_stream(openai_chunks("done"))
    result = await tether.run(temporal_client, run_input(openai_server, model=local),
                              task_queue=worker)
    assert result.status == "completed"
    assert result.cost_known is False


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
async def test_calls_sharing_an_id_or_without_one_each_run_their_own_arguments(
    temporal_client: Client, worker: str, openai_server: ProviderServer,
    anthropic_server: ProviderServer, flavor: str,
):
    server = openai_server if flavor == "openai" else anthropic_server
    calls = [("call_7", "shell", {"command": "echo first"}), ("call_7", "shell", {"command": "echo second"}),
             ("", "shell", {"command": "echo third"}), ("", "shell", {"command": "echo fourth"})]
    answer = openai_chunks if flavor == "openai" else anthropic_events
    server.reply_stream(answer("Four calls.", calls))
    server.reply_stream(answer("done"))
    model = {"provider": flavor, "name": "gpt-4o-mini" if flavor == "openai" else "claude-3-5-haiku-latest",
             "endpoint": ENDPOINT_OF[flavor]}
    result = await tether.run(temporal_client, run_input(server, model=model, tools=["shell"]),
                              task_queue=worker)
    assert result.status == "completed", result.stop_reason
    sent = answered_calls(flavor, server.requests[1].body)
    for call_id, (arguments, outcome) in sent.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", call_id), call_id  # what both vendors accept
        assert outcome["stdout"] == arguments["command"].removeprefix("echo ") + "\n"
    assert sorted(arguments["command"] for arguments, _ in sent.values()) == sorted(
        arguments["command"] for _, _, arguments in calls)
    assert "call_7" in sent  # a unique provider id is kept; only the repeat is renamed
