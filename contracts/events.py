"""What `tether.watch` yields: a run's story as typed events, and the snapshot it reads them from.

Two kinds of event, on purpose:

- **Numbered** events are facts that happened: a step started, a tool call started or
  finished, a step finished, the run finished. Their `offset`s are consecutive and the same
  for every watcher at any time, because they are derived from what the run records (its
  transcript and a count of the events before it), never from when someone looked. A watch
  that resumes `after` an offset gets every later one, none twice.
- **Live** events (`offset` None) say how things are now: the text the model in flight has
  written so far, the calls waiting for a person, the budget. A watcher gets them while it
  watches; one that resumes gets the current ones again, since they describe the present.
  A step's whole text arrives, numbered, in its `step_finished`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer
from tether.contracts.messages import Strict, ToolResult, Usage
from tether.contracts.run import AgentRunResult, BudgetView, RunStatus, StepRecord, without_empty


class StepStarted(Strict):
    kind: Literal["step_started"] = "step_started"
    offset: int
    step: int
    model: str
    messages: list[str] = Field(default_factory=list)
    """What people said to the run that the model reads at this step (its transcript's).
    Absent when none."""
    inherited: bool = False
    """A fork's step taken over from the run it was forked from. Absent when false."""

    @model_serializer(mode="wrap")
    def _without_empty_fields(self, handler: SerializerFunctionWrapHandler) -> Any:
        return without_empty(without_empty(handler(self), "messages"), "inherited")


class ToolCallStarted(Strict):
    kind: Literal["tool_call_started"] = "tool_call_started"
    offset: int
    step: int
    call_id: str
    """`<step>-<index>`, the id `tether approve` takes."""
    tool: str
    arguments: dict[str, Any]
    text: str | None = None
    """What the model said in the step, before asking for its calls: on the step's first
    call only, so that it can be read before the calls' results (its `step_finished` has it
    too). Absent otherwise."""

    @model_serializer(mode="wrap")
    def _without_empty_text(self, handler: SerializerFunctionWrapHandler) -> Any:
        return without_empty(handler(self), "text")


class ToolCallFinished(Strict):
    kind: Literal["tool_call_finished"] = "tool_call_finished"
    offset: int
    step: int
    call_id: str
    tool: str
    result: ToolResult | None
    """None when the call never ran (the budget was spent, or the run was interrupted)."""


class StepFinished(Strict):
    kind: Literal["step_finished"] = "step_finished"
    offset: int
    step: int
    model: str
    text: str | None
    usage: Usage
    note: str | None = None


class RunFinished(Strict):
    kind: Literal["finished"] = "finished"
    offset: int
    result: AgentRunResult | None
    """The run's result; None when it failed, was terminated or timed out."""
    status: str
    """The result's status, or how the workflow closed (`failed`, `terminated`, ...)."""
    error: str | None = None


class TextDelta(Strict):
    """Live: text the model in flight added since the last delta this watcher saw."""

    kind: Literal["text_delta"] = "text_delta"
    offset: None = None
    step: int
    text: str


class ApprovalNeeded(Strict):
    """Live: a call waiting for a person, the model's reason for it, and the commands that
    show it whole and answer it."""

    kind: Literal["approval_needed"] = "approval_needed"
    offset: None = None
    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    """As history holds them: cut in the middle when `capped`."""
    approve_command: str
    """Approves exactly the arguments `arguments_digest` names (with `--digest`, once known)."""
    arguments_digest: str | None = None
    capped: bool = False
    """Whether `arguments` were cut: `status_command` prints them whole."""
    text: str | None = None
    """What the model said in the step that asked for the call, capped."""
    status_command: str = ""
    """Prints the call whole, with the model's whole text and the command approving it."""
    workflow_id: str | None = None
    """The sub-agent whose call waits (`docs/agents.md`); None for the watched run's own."""


class BudgetUpdate(Strict):
    """Live: usage against every limit, when it changed."""

    kind: Literal["budget"] = "budget"
    offset: None = None
    state: str
    budget: BudgetView


RunEvent = Annotated[
    StepStarted | ToolCallStarted | ToolCallFinished | StepFinished | RunFinished
    | TextDelta | ApprovalNeeded | BudgetUpdate,
    Field(discriminator="kind"),
]


class RunProgress(Strict):
    """The `progress` query's answer: one consistent snapshot to derive events from."""

    status: RunStatus
    recorded_events: int
    """Numbered events of every step recorded so far, including steps the transcript no
    longer keeps: the offset after the last of `steps`."""
    steps: list[StepRecord]
    """The transcript's steps after the step the query asked from."""
    in_flight: StepRecord | None = None
    """The step in flight: from its model call on, with the people's messages that call
    reads; with its tool calls once the model has asked for them."""
