"""Every activity's name, input and output: the only thing workflows know of activities.

Workflows call activities by these names with `result_type`, as the Temporal SDK's own
contrib packages do, so no implementation (nor its SDKs) ever enters the workflow sandbox.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer
from tether.contracts.messages import Message, ToolCall, ToolResult, Usage
from tether.contracts.network import BrokeredSecret, NetworkPolicy
from tether.contracts.run import ModelSpec, SandboxSpec
from tether.contracts.tools import McpServer, ToolRoute, call_key

START_CONVERSATION = "start_conversation"
MODEL_CALL = "model_call"
TOOL_CALL = "tool_call"
TOOL_CALL_HERE = "tool_call_here"
FUNCTION_CALL = "function_call"
MCP_LIST_TOOLS = "mcp_list_tools"
MCP_CALL = "mcp_call"
ACQUIRE_SANDBOX = "acquire_sandbox"
RELEASE_SANDBOX = "release_sandbox"
COLLECT_ARTIFACTS = "collect_artifacts"
REAP_SANDBOXES = "reap_sandboxes"
SNAPSHOT_WORKSPACE = "snapshot_workspace"


class StartConversationInput(BaseModel):
    system_prompt: str
    task: str
    models: list[ModelSpec]
    max_cost_usd: float | None = None
    """With a dollar budget, every model must have a known price, or the run is refused."""
    tools: list[str] = Field(default_factory=list)
    """The tools the run asks for, by name: each must be known to the worker."""
    files: dict[str, str] = Field(default_factory=dict)
    """The files the run is given: each must be in the store, and all must fit `disk_mb`."""
    disk_mb: int | None = None
    mcp_servers: list[McpServer] = Field(default_factory=list)
    """The run's MCP servers: each must be one the worker configured, as its models' endpoints."""
    secrets: list[BrokeredSecret] = Field(default_factory=list)
    """The run's `sandbox.network.secrets`: each variable must be one the worker brokers
    (TETHER_BROKERED_ENV); the model is told which hosts get which header, never a value."""
    runtime_tools: list[str] = Field(default_factory=list)
    """Tools the workflow runs itself (`delegate`), added to the run's toolset."""


class StartConversationOutput(BaseModel):
    head: str
    models: list[ModelSpec]
    """The same models, with scripts moved into the store so history holds them once."""
    toolset: str | None = None
    """The digest of the run's tool specs in the store, for its model calls."""
    routes: dict[str, ToolRoute] = Field(default_factory=dict)
    """Where each of the run's tools runs: recorded once, read by the workflow."""


class NewMessage(BaseModel):
    """A message for the conversation: by reference when a tool activity stored it already,
    by value when it is small and the workflow made it (a denial, a person's message)."""

    ref: str | None = None
    message: Message | None = None


class ModelCallInput(BaseModel):
    workflow_id: str
    step: int
    model: ModelSpec
    head: str
    append: list[NewMessage] = Field(default_factory=list)
    """Messages to add to the conversation before the call, in order."""
    tools: list[str] = Field(default_factory=list)
    """The tools the model may call this time, by name (none for a final answer)."""
    toolset: str | None = None
    """The digest of the run's tool specs; None: the built-in tools'."""


class ModelCallOutput(BaseModel):
    head: str
    text: str | None
    tool_calls: list[ToolCall]
    """As history holds them: long arguments capped."""
    usage: Usage
    cost_known: bool
    argument_digests: list[str] = Field(default_factory=list)
    """Each call's whole arguments as `contracts/digests.arguments_digest` names them, in
    order: what an approval names. Empty in histories recorded before."""


class ToolCallInput(BaseModel):
    workflow_id: str
    step: int
    index: int
    call: ToolCall
    """As history holds it: long arguments capped."""
    assistant_ref: str | None = None
    """The stored conversation node of the assistant message that asked for the call: the
    full arguments are read from it, so they are not in history twice."""
    container_id: str
    started_at: str | None = None
    """The sandbox's start, as acquired: a restart since means the sandbox is lost."""
    timeout_seconds: float
    output_limit_bytes: int
    network: NetworkPolicy | None = None
    """The run's allow-list, when its network allows hosts: a worker that took over the
    sandbox opens its egress socket again with it."""

    @property
    def idempotency_key(self) -> str:
        return call_key(self.workflow_id, self.step, self.index)

    @model_serializer(mode="wrap")
    def _without_network_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Absent for a run without network: its history holds what it did before the field.
        data = handler(self)
        if isinstance(data, dict) and data.get("network") is None:
            data.pop("network", None)
        return data


class ToolCallOutput(BaseModel):
    result: ToolResult
    """Capped: this goes into the event history and the transcript."""
    message_ref: str
    """The tool's whole result (up to the sandbox's output limit) as a stored conversation
    message, for the next model call: the model reads it all, the history holds a digest."""


class ToolCallHereInput(BaseModel):
    """A tool call offered to the worker running the workflow, as a local activity."""

    call: ToolCallInput
    worker: str
    """The worker that holds the sandbox: only that worker runs the call here."""
    hand_off_after_seconds: float
    """A call still running after this long is left running and handed to the sandbox's host
    queue, whose activity joins it through the executor's ledger: a workflow task is never
    held open by a long call."""


class ToolCallHereOutput(BaseModel):
    step: int
    index: int
    """Which call of which step this answers: a local activity's input is not in history, so
    its marker says it."""
    output: ToolCallOutput | None = None
    """None: the call did not finish here, and goes to the sandbox's host queue."""
    why_not: str | None = None
    """Why not, for the Web UI's marker and for tests: another worker holds the sandbox, this
    one is draining, or the call outran the hand-off."""


class AcquireInput(BaseModel):
    workflow_id: str
    run_id: str
    spec: SandboxSpec
    files: dict[str, str] = Field(default_factory=dict)
    """Placed in the sandbox's /workspace before it is handed over (`{name: "sha256:..."}`),
    so every sandbox a run gets, a replacement for a lost one too, starts with them."""
    snapshot: str | None = None
    """A workspace snapshot (`sha256:` of its manifest) restored into the sandbox before it is
    handed over, instead of `files`: the workspace the run had when its last sandbox went."""


class SandboxHandle(BaseModel):
    """Where a run's sandbox lives: which container, on which worker, reached on which queue."""

    container_id: str
    task_queue: str
    """The queue of the worker whose engine holds the container: tool calls go there."""
    worker: str
    started_at: str | None = None
    """When the engine started the container: a container started again since is not the
    run's sandbox any more (it came back empty)."""
    host_wait_seconds: float | None = None
    """How long a call may wait for this sandbox's worker before the run declares that worker
    gone and goes on in a new sandbox: the host's TETHER_HOST_WAIT_SECONDS. None (handles
    made before it existed): the workflow's default."""


class ReleaseInput(BaseModel):
    container_id: str


class ReapInput(BaseModel):
    max_age_seconds: float | None = None
    """Sandboxes that have served their run (or waited in a pool) longer than this go, whatever
    their run's state. None: the worker's TETHER_SANDBOX_TTL_SECONDS, or no limit."""


class ReapReport(BaseModel):
    examined: int
    removed: list[str]
