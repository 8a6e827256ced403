"""Fuzzed tool-call arguments from a model, served over the OpenAI and Anthropic wire
protocols: malformed JSON, wrong types, huge and odd-unicode strings, deep nesting. Each
call ends as a tool result the model reads on its next turn (an error, where the arguments
are wrong), on both providers alike: never a retried model call, a stuck run or a failing
workflow task."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from temporalio.client import Client
from tether import client as tether

from tests.fuzz.health import assert_healthy
from tests.fuzz.strategies import ANY_JSON, huge_text, odd_text, wrong_type_for
from tests.fuzz.wire_answers import answer, model_of
from tests.llm.wire_servers import ProviderServer
from tests.workflows.histories import activities


def deep_arguments(depth: int) -> str:
    return '{"command": "true", "x": ' + "[" * depth + "]" * depth + "}"


def truncated(text: str, at: int) -> str:
    return text[: max(1, min(at, len(text) - 1))]


RAW_ARGUMENTS: st.SearchStrategy[str] = st.one_of(
    st.dictionaries(odd_text(max_size=8), ANY_JSON, max_size=4).map(json.dumps),
    st.builds(lambda value: json.dumps({"command": value}), wrong_type_for(str)),
    st.builds(lambda command: json.dumps({"command": command}), odd_text(min_size=1, max_size=30)),
    st.builds(lambda command: json.dumps({"command": "echo " + command}), huge_text(max_chars=150_000)),
    st.builds(truncated, st.just('{"command": "echo hi", "x": [1, {"y": 2}]}'), st.integers(1, 40)),
    st.integers(30, 3000).map(deep_arguments),
    st.sampled_from(["", "null", "[1, 2]", '"text"', "{", '{"command": "echo \\ud800"}',
                     '{"command": "echo a\\u0000b"}', '{"order_id": 5}', '{"order_id": "A-1", "x": 1}']),
)
TOOLS = ["shell", "lookup_order"]  # a sandbox tool and a function tool (tests/tools_plain.py)
FUZZ = settings(max_examples=8, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
@FUZZ
@given(tool=st.sampled_from(TOOLS), raw=RAW_ARGUMENTS)
# Nested deeper than the workflow's JSON reader goes (about 200), not as deep as the
# activity's writer refuses: the workflow task failed on decoding the model's turn, forever.
@example(tool="shell", raw=deep_arguments(220))
# A lone surrogate: no UTF-8 for it, so every attempt of the model call failed to store it.
@example(tool="shell", raw='{"command": "echo \\ud800"}')
async def test_hostile_tool_arguments_end_as_a_result_the_model_reads(
    temporal_client: Client, worker: str, wire_servers: dict[str, ProviderServer],
    flavor: str, tool: str, raw: str,
):
    server = wire_servers[flavor]
    server.replies.clear()
    answer(server, call=(tool, raw))
    answer(server, text="done")
    handle = await tether.start_run(temporal_client, {
        "task": "fuzz", "model": model_of(server), "tools": TOOLS,
        "sandbox": {"tool_timeout_seconds": 10}}, task_queue=worker)
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "done")
    first_call = next(a for a in await activities(temporal_client, handle) if a.type == "model_call")
    steps = await tether.get_transcript(temporal_client, handle.id)
    # Malformed arguments are the model's mistake, not the answer's: no retried model call
    # (which would have taken "done"); the call reached its tool, and the model read its answer.
    assert first_call.attempt == 1, raw
    [call] = steps[0].tool_calls
    [outcome] = steps[0].tool_results
    assert call.name == tool
    if call.arguments.get("_raw") is not None:
        assert outcome.exit_code != 0 and outcome.stderr
    await assert_healthy(handle)


def test_the_deep_arguments_example_is_past_the_readers_limit():
    """The regression example above means something only while it is deeper than what
    pydantic's JSON reader (the workflow's, the store's) accepts."""
    from tether.contracts import ToolCall

    with pytest.raises(ValueError, match="recursion limit"):
        ToolCall.model_validate_json(json.dumps({"name": "x", "arguments": json.loads(deep_arguments(220))}))
