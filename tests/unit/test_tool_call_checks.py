"""workflows/tool_calls.py: what makes a call the model asked for unfit to run."""

from __future__ import annotations

import pytest
from tether.contracts import ALL_TOOLS, ToolCall
from tether.workflows.tool_calls import invalid_call_reason

ENABLED = ["shell", "read_file"]


@pytest.mark.parametrize(
    "call",
    [
        ToolCall(name="python", arguments={"code": "print(1)"}),
        ToolCall(name="shell", arguments={"command": "ls", "extra": 1}),
        ToolCall(name="read_file", arguments={"path": "a.txt"}),
        ToolCall(name="write_file", arguments={"path": "a.txt", "content": ""}),
    ],
)
def test_a_well_formed_call_to_an_enabled_tool_may_run(call: ToolCall):
    assert invalid_call_reason(call, list(ALL_TOOLS)) is None


def test_an_unknown_tool_is_named_with_the_tools_that_exist():
    reason = invalid_call_reason(ToolCall(name="teleport"), ENABLED)
    assert reason == "unknown tool 'teleport'; available: shell, read_file"


def test_a_tool_not_enabled_for_the_run_is_refused():
    reason = invalid_call_reason(ToolCall(name="python", arguments={"code": "1"}), ENABLED)
    assert reason == "tool 'python' is not enabled for this run; available: shell, read_file"


@pytest.mark.parametrize(
    ("arguments", "missing"),
    [({"path": "a"}, "content"), ({"content": "x"}, "path"), ({"path": 1, "content": "x"}, "path")],
)
def test_a_missing_or_non_string_argument_is_named(arguments: dict, missing: str):
    reason = invalid_call_reason(ToolCall(name="write_file", arguments=arguments), list(ALL_TOOLS))
    assert reason == f"write_file needs a string argument {missing!r}"
