"""Everything an AgentRun holds, in one model, carried whole across continue-as-new.

Everything here is O(1) in the length of the run: the conversation is a digest, and the
transcript keeps only its most recent `TRANSCRIPT_KEPT` steps, each capped. Older steps
are in the event histories of the run's earlier executions and in the conversation store.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from tether.contracts import (
    Budget,
    ModelSpec,
    NewMessage,
    PendingApproval,
    RunPhase,
    SandboxHandle,
    StepRecord,
    Usage,
)
from tether.contracts.agents import ChildWaiting
from tether.contracts.caps import cap_record
from tether.contracts.files import RunArtifacts
from tether.contracts.tools import ToolRoute

TRANSCRIPT_KEPT = 50


class ApprovalWait(BaseModel):
    """A tool call waiting for a person's `approve` update."""

    request: PendingApproval
    approved: bool | None = None
    reason: str | None = None


class RunState(BaseModel):
    started_at: datetime
    budget: Budget
    phase: RunPhase = "starting"
    """What the run is doing now, as `status` and the `TetherStatus` search attribute show it."""
    models: list[ModelSpec] = Field(default_factory=list)
    head: str | None = None
    """The digest of the conversation so far, in the content store."""
    toolset: str | None = None
    """The digest of the run's tool specs in the content store, read at its start."""
    routes: dict[str, ToolRoute] = Field(default_factory=dict)
    """Where each of the run's tools runs (sandbox or worker function), read at its start."""
    step: int = 0
    usage: Usage = Field(default_factory=Usage)
    egress_bytes: int = 0
    """Bytes the run's tools moved through the egress proxy (`budget.max_egress_mb`)."""
    cost_known: bool = True
    sandbox: SandboxHandle | None = None
    snapshot: str | None = None
    """The latest snapshot of the run's workspace (`sha256:` of its manifest): restored into
    the next sandbox the run acquires."""
    sandbox_released: bool = False
    """True from an idle release until the next sandbox: `status` shows the sandbox released."""
    tool_results: list[NewMessage] = Field(default_factory=list)
    """The last step's tool results, for the next model call."""
    inbox: list[NewMessage] = Field(default_factory=list)
    """Messages from people (and the runtime) for the next model call. Kept apart from
    tool results because providers require a tool result right after the call it answers:
    a person's message sent while tools run goes after them, not between."""
    from_people: list[str] = Field(default_factory=list)
    """The messages of `inbox` that people sent, as they typed them, for the transcript of
    the step whose model call reads them (the inbox also holds the runtime's own)."""
    approvals: dict[str, ApprovalWait] = Field(default_factory=dict)
    """Calls waiting for a person, by call id; the `approve` update decides them."""
    cancel_reason: str | None = None
    """Set by the `cancel` update; the loop stops at its next chance."""
    answer: str | None = None
    """The model's final answer, once it gives one."""
    unread_answer: str | None = None
    """An answer the model gave while a person's message was on its way: the model gets a
    turn to read the message, but if the budget allows none, this is the run's output."""
    transcript: list[StepRecord] = Field(default_factory=list)
    recorded_events: int = 0
    """How many numbered watch events (`contracts/events.py`) the recorded steps make, older
    steps included: what lets a watcher number the transcript's steps the same every time."""
    in_flight: StepRecord | None = None
    """The step in flight, for watchers, from its model call on (with the people's messages
    the call reads; its tool calls once asked for); None between steps."""
    last_error: str | None = None
    last_model: str | None = None
    artifacts: RunArtifacts | None = None
    """What the run's `artifacts` globs collected when it ended (None before)."""
    continued: int = 0
    """How many times this run has continued as new."""
    continued_at_step: int = 0
    delegated_steps: int = 0
    """Steps the run's sub-agents took, charged to its `max_steps` (`workflows/carving.py`)."""
    children_waiting: dict[str, list[ChildWaiting]] = Field(default_factory=dict)
    """Calls of the run's sub-agents (and theirs) waiting for a person, by child id."""

    def tool_names(self, asked: list[str]) -> list[str]:
        """The tools the model may call: those the run asked for, its MCP servers', and
        `delegate` for a run with `agents`."""
        return [*asked, *(name for name, route in self.routes.items()
                          if route.kind in ("mcp", "delegate"))]

    def record(self, entry: StepRecord) -> None:
        self.in_flight = None
        self.recorded_events += events_of(entry)
        self.transcript.append(cap_record(entry))
        del self.transcript[:-TRANSCRIPT_KEPT]


def events_of(step: StepRecord) -> int:
    """A recorded step's numbered watch events: started, each call started and finished, finished."""
    return 2 + 2 * len(step.tool_calls)
