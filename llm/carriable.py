"""What a model's turn may carry into tether, whatever the model sent: text and tool
arguments that JSON, the conversation store and Temporal's history can all hold.

A lone surrogate (`"\\ud800"` is valid JSON) can't be written as UTF-8, and arguments nested
a few hundred levels deep are written by the activity but refused by the JSON reader of the
workflow or the store: either would fail the step on every retry, or worse, the workflow
task. The text keeps a replacement character; arguments too deep become a tool error.

A call's id is how its result finds it, in the store (`full_arguments`) and at the provider
(`tool_call_id`, `tool_use_id`): two calls of one turn sharing an id, or without one, would
run or answer each other's arguments. A repeated or empty id is replaced by one of tether's;
a unique one is kept, so the provider reads back the ids it sent.
"""

from __future__ import annotations

import re
from typing import Any

from tether.contracts import ModelTurn, ToolCall

MAX_ARGUMENT_DEPTH = 64
"""Levels of nesting in a call's arguments; readers refuse past about 200."""
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def carriable(turn: ModelTurn, *, step: int) -> ModelTurn:
    """`step` makes the ids tether gives unique in the conversation, not only in the turn."""
    return turn.model_copy(update={
        "text": None if turn.text is None else _text(turn.text),
        "tool_calls": unique_ids([_call(call) for call in turn.tool_calls], step=step),
    })


def unique_ids(calls: list[ToolCall], *, step: int) -> list[ToolCall]:
    """The calls, the second and later of a repeated id and every empty one renamed
    `tether_<step>_<index>`: letters, digits and `_`, which every provider takes back."""
    taken = {call.id for call in calls}
    seen: set[str] = set()
    out = []
    for index, call in enumerate(calls):
        if call.id and call.id not in seen:
            seen.add(call.id)
            out.append(call)
            continue
        new, n = f"tether_{step}_{index}", 0
        while new in taken:  # a provider's id that happens to look like tether's
            n += 1
            new = f"tether_{step}_{index}_{n}"
        taken.add(new)
        seen.add(new)
        out.append(call.model_copy(update={"id": new}))
    return out


def _call(call: ToolCall) -> ToolCall:
    arguments: dict[str, Any] = (
        _clean(call.arguments) if depth(call.arguments) <= MAX_ARGUMENT_DEPTH
        # The `_raw` convention of malformed arguments: the tool reports it to the model.
        else {"_raw": f"arguments nested deeper than {MAX_ARGUMENT_DEPTH} levels"})
    return call.model_copy(update={"id": _text(call.id), "name": _text(call.name), "arguments": arguments})


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, without recursion."""
    deepest, level = 0, [value]
    while containers := [item for item in level if isinstance(item, dict | list)]:
        deepest += 1
        level = [child for item in containers
                 for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(str(key)): _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _text(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)
