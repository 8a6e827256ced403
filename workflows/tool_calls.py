"""Checks on a tool call the model asked for, before anything runs. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

from tether.contracts import ToolCall

REQUIRED_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "python": ("code",),
    "shell": ("command",),
    "read_file": ("path",),
    "write_file": ("path", "content"),
}


def invalid_call_reason(call: ToolCall, allowed: Sequence[str]) -> str | None:
    """Why the call can't run (told to the model as the tool's result), or None."""
    if call.name not in allowed:
        if call.name in REQUIRED_ARGUMENTS:
            return f"tool {call.name!r} is not enabled for this run; available: {', '.join(allowed)}"
        return f"unknown tool {call.name!r}; available: {', '.join(allowed)}"
    # A function tool's arguments are checked against its signature where it runs.
    for name in REQUIRED_ARGUMENTS.get(call.name, ()):
        if not isinstance(call.arguments.get(name), str):
            return f"{call.name} needs a string argument {name!r}"
    return None
