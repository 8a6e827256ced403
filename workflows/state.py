"""What a run carries from step to step, and across continue-as-new.

Everything here is O(1) in the length of the run: the conversation is a digest, and the
transcript keeps only its most recent steps (older ones are in the event history and the
conversation store).
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
    step: int = 0
    usage: Usage = Field(default_factory=Usage)
    cost_known: bool = True
    sandbox: SandboxRef | None = None
    pending: list[PendingMessage] = Field(default_factory=list)
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
    if text is None or len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n[... {len(text) - limit} characters ...]\n" + text[-limit // 2:]


def cap_record(entry: StepRecord) -> StepRecord:
    results = [
        ToolResult(**{**r.model_dump(), "stdout": cap_text(r.stdout), "stderr": cap_text(r.stderr)})
        for r in entry.tool_results
    ]
    return entry.model_copy(update={"text": cap_text(entry.text), "tool_results": results})


class ApprovalWait(BaseModel):
    """A tool call waiting for a person's `approve` update."""

    request: PendingApproval
    approved: bool | None = None
    reason: str | None = None
