"""What a run carries from step to step, and across continue-as-new.

Everything here is O(1) in the length of the run: the conversation is a digest, and the
transcript keeps only its most recent `TRANSCRIPT_KEPT` steps, each capped. Older steps
are in the event histories of the run's earlier executions and in the conversation store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workflows.types import (
    Budget,
    ModelSpec,
    PendingApproval,
    StepRecord,
    ToolResult,
    Usage,
)

TRANSCRIPT_KEPT = 50
TRANSCRIPT_TEXT_CAP = 2000


class SandboxRef(BaseModel):
    container_id: str
    task_queue: str
    worker: str


class PendingMessage(BaseModel):
    """Mirrors `activities.model.NewMessage`; kept here so the state needs no activity import."""

    ref: str | None = None
    message: dict[str, Any] | None = None


class RunState(BaseModel):
    started_at: datetime
    budget: Budget
    models: list[ModelSpec] = Field(default_factory=list)
    head: str | None = None
    """The digest of the conversation so far, in the content store."""
    step: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_known: bool = True
    sandbox: SandboxRef | None = None
    tool_results: list[PendingMessage] = Field(default_factory=list)
    """The last step's tool results, for the next model call."""
    inbox: list[PendingMessage] = Field(default_factory=list)
    """Messages from people (and the runtime) for the next model call. Kept apart from
    tool results because providers require a tool result right after the call it answers:
    a person's message sent while tools run goes after them, not between."""
    transcript: list[StepRecord] = Field(default_factory=list)
    last_error: str | None = None
    last_model: str | None = None
    continued: int = 0
    """How many times this run has continued as new."""
    continued_at_step: int = 0

    def record(self, entry: StepRecord) -> None:
        self.transcript.append(cap_record(entry))
        del self.transcript[:-TRANSCRIPT_KEPT]


def cap_text(text: str | None, limit: int = TRANSCRIPT_TEXT_CAP) -> str | None:
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
    })


class ApprovalWait(BaseModel):
    """A tool call waiting for a person's `approve` update."""

    request: PendingApproval
    approved: bool | None = None
    reason: str | None = None
