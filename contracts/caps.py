"""How much of a long text, a tool's arguments or its result the event history holds.

Pure functions over contract types, shared by the workflow (transcript, approvals) and the
activities (what they return into history): the whole value is in the conversation store.
"""

from __future__ import annotations

from typing import Any

from tether.contracts.messages import ToolResult
from tether.contracts.run import StepRecord

TEXT_CAP = 2000


def cap_text(text: str | None, limit: int = TEXT_CAP) -> str | None:
    """Keeps the head and tail of a long text and says how much was cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n[... {len(text) - limit} characters ...]\n" + text[-limit // 2:]


def cap_result(result: ToolResult) -> ToolResult:
    return result.model_copy(update={"stdout": cap_text(result.stdout), "stderr": cap_text(result.stderr)})


def cap_arguments(value: Any) -> Any:
    """A tool call's arguments with every long string capped (a whole file to write, say)."""
    if isinstance(value, str):
        return cap_text(value)
    if isinstance(value, dict):
        return {key: cap_arguments(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cap_arguments(item) for item in value]
    return value


def cap_record(entry: StepRecord) -> StepRecord:
    calls = [call.model_copy(update={"arguments": cap_arguments(call.arguments)})
             for call in entry.tool_calls]
    return entry.model_copy(update={
        "text": cap_text(entry.text),
        "tool_calls": calls,
        "tool_results": [cap_result(result) for result in entry.tool_results],
        "messages": [cap_text(message) or "" for message in entry.messages],
    })
