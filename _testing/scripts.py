"""Scripted models in a line: the turns a test wants its "model" to take."""

from __future__ import annotations

from typing import Any

from tether.contracts import ModelSpec, Script, ScriptTurn, ToolCall


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call for a scripted turn: `call("lookup_order", order_id="A-1")`."""
    return ToolCall(name=name, arguments=arguments)


def scripted(*turns: str | ToolCall | list[ToolCall] | ScriptTurn) -> ModelSpec:
    """The scripted model, playing `turns` in order: text is an answer (it ends the run; it
    may hold `{{last_output}}`, the last tool result), a call or a list of calls is a turn
    that asks for them, and a `ScriptTurn` is taken as it is (text and calls, usage)."""
    return ModelSpec(provider="scripted", script=Script(turns=[_turn(t) for t in turns]))


def _turn(turn: str | ToolCall | list[ToolCall] | ScriptTurn) -> ScriptTurn:
    if isinstance(turn, ScriptTurn):
        return turn
    if isinstance(turn, str):
        return ScriptTurn(text=turn)
    return ScriptTurn(tool_calls=[turn] if isinstance(turn, ToolCall) else list(turn))
