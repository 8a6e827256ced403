"""Sub-agents: what a run's input says about delegation, and what a parent shows of its
children's waiting calls. A sub-agent is a child `AgentRun`; its own input is an
`AgentRunInput` like any other, built from the parent's by `workflows/delegation.py`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator
from tether.contracts.messages import Strict, ToolCall

DELEGATE = "delegate"
"""The runtime tool a run with `agents` is offered: it starts a sub-agent."""


class AgentsPolicy(Strict):
    """Offers the model the `delegate` tool. Without it, a run has no such tool."""

    max_depth: int = Field(default=2, ge=1, le=8)
    """How deep sub-agents may nest: a run at this depth may not delegate."""
    max_children: int = Field(default=4, ge=1, le=32)
    """Sub-agents one step runs at once; further calls of the step wait for a free place."""
    depth: int = Field(default=0, ge=0)
    """This run's own depth: 0 for a run people start, its parent's plus one for a sub-agent."""

    @model_validator(mode="after")
    def _within_depth(self) -> AgentsPolicy:
        if self.depth > self.max_depth:
            raise ValueError(f"depth {self.depth} is past max_depth {self.max_depth}")
        return self


class DelegateArguments(Strict):
    """The `delegate` tool's arguments: the child's task and, optionally, its own input's
    fields. What is not given comes from the parent; what is given may narrow the parent's
    tools, sandbox and approvals, never widen them."""

    task: str = Field(min_length=1)
    model: Any = None
    tools: list[str] | None = None
    system_prompt: str | None = None
    sandbox: dict[str, Any] = Field(default_factory=dict)
    approval: dict[str, Any] = Field(default_factory=dict)
    budget: dict[str, Any] = Field(default_factory=dict)


class ChildWaiting(Strict):
    """A descendant's call waiting for a person, as its parent's status shows it."""

    workflow_id: str
    call_id: str
    tool: str
    arguments_digest: str | None = None

    @property
    def approve_command(self) -> str:
        pinned = f" --digest {self.arguments_digest}" if self.arguments_digest else ""
        return f"tether approve {self.workflow_id} {self.call_id}{pinned}"


AWAIT_CHILD = "await_child"
"""The activity that waits on a sub-agent its parent found already started, and attached to."""
DELEGATE_ARGUMENTS = "delegate_arguments"
"""The local activity that reads a `delegate` call's whole arguments when history holds them cut."""
STORE_TOOL_MESSAGE = "store_tool_message"
"""The local activity that stores a sub-agent's answer as its call's tool message: history holds
the answer once, in the child's completion, and the next model call names the message's digest."""


class AwaitChildInput(Strict):
    workflow_id: str


class DelegateArgumentsInput(Strict):
    assistant_ref: str
    """The stored assistant message that asked for the call."""
    call: ToolCall
    """As history holds it: long strings cut."""
