"""`AnthropicProvider` against a real HTTP server speaking the Messages API, via the real SDK."""

from __future__ import annotations

from typing import Any

from tether.contracts import BUILTIN_TOOLS, Message, ModelSpec, ToolCall

from tests.endpoints import ENDPOINT_OF, add_model_endpoint
from tests.helpers import providers
from tests.llm.wire_servers import ProviderServer


def message(
    *blocks: dict[str, Any], input_tokens: int = 30, output_tokens: int = 9, **usage: int
) -> dict[str, Any]:
    """A Messages API response body as Anthropic sends it."""
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": list(blocks),
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens, **usage},
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def spec_for(server: ProviderServer) -> ModelSpec:
    return ModelSpec(provider="anthropic", name="claude-3-5-haiku-latest",
                     endpoint=ENDPOINT_OF[server.flavor])


async def test_a_text_answer_comes_back_as_the_turns_text(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_json(message(text("Paris.")))
    turn = await providers().get("anthropic").complete(
        spec_for(anthropic_server), [Message(role="user", content="Capital of France?")], []
    )
    assert turn.text == "Paris."
    assert turn.tool_calls == []
    [request] = anthropic_server.requests
    assert request.path == "/v1/messages"
    assert request.key == anthropic_server.api_key
    assert "anthropic-version" in request.headers
    assert request.body["model"] == "claude-3-5-haiku-latest"
    assert request.body["max_tokens"] == 4096
    assert request.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]}
    ]
    assert "tools" not in request.body
    assert "system" not in request.body


async def test_several_tool_calls_in_one_turn_keep_their_ids_and_arguments(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_json(message(
        text("I'll look around."),
        tool_use("toolu_01", "shell", {"command": "ls"}),
        tool_use("toolu_02", "read_file", {"path": "notes.md"}),
    ))
    turn = await providers().get("anthropic").complete(
        spec_for(anthropic_server), [Message(role="user", content="go")],
        [BUILTIN_TOOLS["shell"], BUILTIN_TOOLS["read_file"]],
    )
    assert turn.text == "I'll look around."
    assert turn.tool_calls == [
        ToolCall(id="toolu_01", name="shell", arguments={"command": "ls"}),
        ToolCall(id="toolu_02", name="read_file", arguments={"path": "notes.md"}),
    ]


async def test_the_request_carries_the_tools_and_the_results_of_earlier_calls(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_json(message(text("Done.")))
    conversation = [
        Message(role="system", content="You are terse."),
        Message(role="user", content="Run two things."),
        Message(role="assistant", content="Running.", tool_calls=[
            ToolCall(id="toolu_1", name="shell", arguments={"command": "date"}),
            ToolCall(id="toolu_2", name="python", arguments={"code": "print(2)"}),
        ]),
        Message(role="tool", tool_call_id="toolu_1", name="shell", content="Mon"),
        Message(role="tool", tool_call_id="toolu_2", name="python", content="2"),
        Message(role="user", content="And now?"),
    ]
    await providers().get("anthropic").complete(
        spec_for(anthropic_server), conversation, [BUILTIN_TOOLS["shell"], BUILTIN_TOOLS["python"]]
    )

    [request] = anthropic_server.requests
    assert request.body["system"] == "You are terse."
    assert request.body["tools"] == [
        {"name": "shell", "description": BUILTIN_TOOLS["shell"].description,
         "input_schema": BUILTIN_TOOLS["shell"].parameters},
        {"name": "python", "description": BUILTIN_TOOLS["python"].description,
         "input_schema": BUILTIN_TOOLS["python"].parameters},
    ]
    # Both results and the next user text share one user message, results first.
    assert request.body["messages"] == [
        {"role": "user", "content": [text("Run two things.")]},
        {"role": "assistant", "content": [
            text("Running."),
            tool_use("toolu_1", "shell", {"command": "date"}),
            tool_use("toolu_2", "python", {"code": "print(2)"}),
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Mon"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "2"},
            text("And now?"),
        ]},
    ]


async def test_consecutive_messages_of_one_role_are_merged_so_roles_alternate(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_json(message(text("ok")))
    conversation = [
        Message(role="system", content="Rule one."),
        Message(role="user", content="Task."),
        Message(role="user", content="Also this."),
        Message(role="assistant", content=""),  # an empty turn: the API rejects empty content
        Message(role="system", content="Rule two."),
        Message(role="user", content="Well?"),
    ]
    await providers().get("anthropic").complete(spec_for(anthropic_server), conversation, [])

    [request] = anthropic_server.requests
    assert request.body["system"] == "Rule one.\n\nRule two."
    assert request.body["messages"] == [
        {"role": "user", "content": [text("Task."), text("Also this."), text("Well?")]},
    ]


async def test_the_tokens_the_server_reports_are_recorded_as_usage(
    anthropic_server: ProviderServer,
) -> None:
    anthropic_server.reply_json(message(text("ok"), input_tokens=812, output_tokens=64))
    turn = await providers().get("anthropic").complete(
        spec_for(anthropic_server), [Message(role="user", content="hi")], []
    )
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (812, 64)


async def test_cached_prompt_tokens_count_as_input(anthropic_server: ProviderServer) -> None:
    anthropic_server.reply_json(message(
        text("ok"), input_tokens=10, output_tokens=5,
        cache_creation_input_tokens=100, cache_read_input_tokens=1000,
    ))
    turn = await providers().get("anthropic").complete(
        spec_for(anthropic_server), [Message(role="user", content="hi")], []
    )
    assert turn.usage.input_tokens == 1110


async def test_max_output_tokens_comes_from_the_environment(
    anthropic_server: ProviderServer, monkeypatch
) -> None:
    monkeypatch.setenv("TETHER_MAX_OUTPUT_TOKENS", "512")
    anthropic_server.reply_json(message(text("short")))
    await providers().get("anthropic").complete(
        spec_for(anthropic_server), [Message(role="user", content="hi")], []
    )
    assert anthropic_server.requests[0].body["max_tokens"] == 512


async def test_a_local_endpoint_configured_without_a_key_variable_gets_the_placeholder(
    serve, monkeypatch
) -> None:
    server = serve("anthropic", "tether-no-key")  # no ANTHROPIC_API_KEY is set
    add_model_endpoint(monkeypatch, "local", provider="anthropic", base_url=server.base_url)
    server.reply_json(message(text("local")))
    turn = await providers().get("anthropic").complete(
        ModelSpec(provider="anthropic", name="claude-3-5-haiku-latest", endpoint="local"),
        [Message(role="user", content="hi")], []
    )
    assert turn.text == "local"
    assert server.requests[0].key == "tether-no-key"
