"""Builders for scripted-model inputs: the turns a test wants, as an AgentRun input dict."""

from __future__ import annotations

from typing import Any


def turn(text: str | None = None, **tools: Any) -> dict[str, Any]:
    """One scripted turn; keyword arguments are tool calls: shell="ls", python="print(1)"."""
    calls = []
    for name, value in tools.items():
        for argument in value if isinstance(value, list) else [value]:
            calls.append({"name": name, "arguments": _arguments(name, argument)})
    return {"text": text, "tool_calls": calls}


def _arguments(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    key = {"python": "code", "shell": "command", "read_file": "path"}[name]
    return {key: value}


def scripted_run(task: str, *turns: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {"task": task, "model": {"provider": "scripted", "script": {"turns": list(turns)}},
            **overrides}
