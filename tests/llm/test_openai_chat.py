"""`OpenAIProvider` against a real HTTP server speaking Chat Completions, via the real SDK."""

from __future__ import annotations

import json
from typing import Any

from tether.contracts import BUILTIN_TOOLS, Message, ModelSpec, ToolCall

from tests.endpoints import ENDPOINT_OF, add_model_endpoint
from tests.helpers import providers
from tests.llm.wire_servers import ProviderServer


def completion(
    content: str | None = None,
    tool_calls: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    prompt_tokens: int = 21,
    completion_tokens: int = 8,
) -> dict[str, Any]:
    """A Chat Completions response body as OpenAI sends it."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            for call_id, name, args in tool_calls
        ]
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{
            "index": 0, "message": message, "logprobs": None,
            "finish_reason": "tool_calls" if tool_calls else "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def spec_for(server: ProviderServer, **extra: Any) -> ModelSpec:
    return ModelSpec(provider="openai", name="gpt-4o-mini", endpoint=ENDPOINT_OF[server.flavor], **extra)


async def test_a_text_answer_comes_back_as_the_turns_text(openai_server: ProviderServer) -> None:
    openai_server.reply_json(completion("The answer is 42."))
    turn = await providers().get("openai").complete(
        spec_for(openai_server), [Message(role="user", content="What is 6 x 7?")], []
    )
    assert turn.text == "The answer is 42."
    assert turn.tool_calls == []
    [request] = openai_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {openai_server.api_key}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == [{"role": "user", "content": "What is 6 x 7?"}]
    assert "tools" not in request.body


async def test_several_tool_calls_in_one_turn_keep_their_ids_and_arguments(
    openai_server: ProviderServer,
) -> None:
    openai_server.reply_json(completion(tool_calls=[
        ("call_a1", "shell", json.dumps({"command": "ls -la"})),
        ("call_b2", "write_file", json.dumps({"path": "x.txt", "content": "hi"})),
        ("call_c3", "python", json.dumps({"code": "print(1)"})),
    ]))
    turn = await providers().get("openai").complete(
        spec_for(openai_server), [Message(role="user", content="go")],
        [BUILTIN_TOOLS[name] for name in ("shell", "write_file", "python")],
    )
    assert turn.text is None
    assert turn.tool_calls == [
        ToolCall(id="call_a1", name="shell", arguments={"command": "ls -la"}),
        ToolCall(id="call_b2", name="write_file", arguments={"path": "x.txt", "content": "hi"}),
        ToolCall(id="call_c3", name="python", arguments={"code": "print(1)"}),
    ]


async def test_the_request_carries_the_tools_and_the_results_of_earlier_calls(
    openai_server: ProviderServer,
) -> None:
    openai_server.reply_json(completion("Both files are there."))
    conversation = [
        Message(role="system", content="You are terse."),
        Message(role="user", content="List the files, then read a.txt."),
        Message(role="assistant", content="Looking.", tool_calls=[
            ToolCall(id="call_1", name="shell", arguments={"command": "ls"}),
            ToolCall(id="call_2", name="read_file", arguments={"path": "a.txt"}),
        ]),
        Message(role="tool", tool_call_id="call_1", name="shell", content='{"stdout": "a b"}'),
        Message(role="tool", tool_call_id="call_2", name="read_file", content="hello"),
    ]
    await providers().get("openai").complete(
        spec_for(openai_server), conversation, [BUILTIN_TOOLS["shell"], BUILTIN_TOOLS["read_file"]]
    )

    [request] = openai_server.requests
    assert request.body["tools"] == [
        {"type": "function", "function": {"name": "shell", "description": BUILTIN_TOOLS["shell"].description,
                                          "parameters": BUILTIN_TOOLS["shell"].parameters}},
        {"type": "function", "function": {"name": "read_file",
                                          "description": BUILTIN_TOOLS["read_file"].description,
                                          "parameters": BUILTIN_TOOLS["read_file"].parameters}},
    ]
    assert request.body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "List the files, then read a.txt."},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "shell", "arguments": '{"command": "ls"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "a.txt"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"stdout": "a b"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "hello"},
    ]


async def test_the_tokens_the_server_reports_are_recorded_as_usage(
    openai_server: ProviderServer,
) -> None:
    openai_server.reply_json(completion("ok", prompt_tokens=1234, completion_tokens=56))
    turn = await providers().get("openai").complete(
        spec_for(openai_server), [Message(role="user", content="hi")], []
    )
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (1234, 56)


async def test_a_server_that_reports_no_usage_counts_zero_tokens(
    openai_server: ProviderServer,
) -> None:
    body = completion("ok")
    del body["usage"]  # some self-hosted servers leave it out
    openai_server.reply_json(body)
    turn = await providers().get("openai").complete(
        spec_for(openai_server), [Message(role="user", content="hi")], []
    )
    assert turn.text == "ok"
    assert turn.usage.total_tokens == 0


async def test_malformed_tool_arguments_are_kept_raw_instead_of_failing_the_turn(
    openai_server: ProviderServer,
) -> None:
    openai_server.reply_json(completion(tool_calls=[
        ("call_1", "python", '{"code": "print(1)"'),  # the closing brace never came
        ("call_2", "shell", "[1, 2]"),  # JSON, but not an object
        ("call_3", "read_file", ""),
    ]))
    turn = await providers().get("openai").complete(
        spec_for(openai_server), [Message(role="user", content="go")],
        [BUILTIN_TOOLS[name] for name in ("python", "shell", "read_file")],
    )
    assert [call.arguments for call in turn.tool_calls] == [
        {"_raw": '{"code": "print(1)"'}, {"_raw": "[1, 2]"}, {},
    ]


async def test_a_local_endpoint_configured_without_a_key_variable_gets_the_placeholder(
    serve, monkeypatch
) -> None:
    server = serve("openai", "tether-no-key")  # no OPENAI_API_KEY is set
    add_model_endpoint(monkeypatch, "local", provider="openai", base_url=server.base_url)
    server.reply_json(completion("from vLLM"))
    turn = await providers().get("openai").complete(
        ModelSpec(provider="openai", name="gpt-4o-mini", endpoint="local"),
        [Message(role="user", content="hi")], []
    )
    assert turn.text == "from vLLM"
    assert server.requests[0].key == "tether-no-key"


async def test_openai_base_url_from_the_environment_is_used(
    openai_server: ProviderServer, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    openai_server.reply_json(completion("via env"))
    turn = await providers().get("openai").complete(
        ModelSpec(provider="openai", name="gpt-4o-mini"), [Message(role="user", content="hi")], []
    )
    assert turn.text == "via env"
    assert len(openai_server.requests) == 1
