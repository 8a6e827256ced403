"""A run's input, its result and its live status: the contract with whoever starts runs.

Everything here is plain pydantic: it crosses Temporal's data converter
(`pydantic_data_converter`) and must stay backwards compatible for running workflows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from tether.contracts.agents import AgentsPolicy, ChildWaiting
from tether.contracts.files import MAX_FILES, ArtifactRecord, SkippedArtifact, digest_of, name_problem
from tether.contracts.messages import Strict, ToolCall, ToolResult, Usage
from tether.contracts.network import NetworkPolicy
from tether.contracts.tools import McpServer

ALL_TOOLS: tuple[str, ...] = ("python", "shell", "read_file", "write_file")
"""The built-in sandbox tools, every run's by default."""
Provider = Literal["scripted", "openai", "anthropic"]
RunPhase = Literal[
    "starting", "thinking", "running_tools", "awaiting_approval", "waiting_for_sandbox",
    "completed", "budget_exhausted", "cancelled", "failed",
]
FinalStatus = Literal["completed", "budget_exhausted", "cancelled", "failed"]
ACCOUNT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""A budget account's name: it is part of a workflow id and a metric label."""
LONGEST_SECONDS = 366 * 24 * 3600
"""The longest duration a run may name (a year): each becomes a Temporal timer or timeout,
and one past what those hold would fail the workflow's task, forever, not the run."""


class ScriptTurn(Strict):
    """One turn of a scripted model: text, tool calls, or both. No tool calls ends the run."""

    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage | None = None
    delay_seconds: float = Field(default=0, ge=0, le=3600)
    """How long the turn takes to arrive, as a slow model would: lets tests and demos catch
    a run in the middle of a model call."""


class Script(Strict):
    turns: list[ScriptTurn] = Field(min_length=1)
    begins_after: int = Field(default=0, ge=0)
    """Model answers already in the conversation before the script's first turn: a fork's
    inherited steps, so a script given to a fork plays from its first turn. Absent when 0."""

    @model_serializer(mode="wrap")
    def _without_no_offset(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Absent when 0: a script stored by reference keeps the digest it had before.
        return without_empty(handler(self), "begins_after")


class ModelPrice(Strict):
    """Dollars per million tokens. Overrides the price table, and makes a cost budget
    enforceable for a model the table doesn't know (a self-hosted or brand-new one)."""

    input_per_mtok_usd: float = Field(ge=0)
    output_per_mtok_usd: float = Field(ge=0)


class ModelSpec(Strict):
    """Which model serves a step. Accepts `"provider:name"` or the object form."""

    provider: Provider
    name: str = ""
    endpoint: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")
    """An endpoint of the worker's `TETHER_MODEL_ENDPOINTS`, by name: the worker's configuration
    says its URL and the variable its key is read from. None: the vendor's own."""
    base_url: str | None = None
    """Kept so recorded histories and older inputs decode: a worker refuses one that is not a
    configured endpoint's (with `TETHER_ALLOW_INPUT_URLS`, it sends that URL no key)."""
    api_key_env: str | None = None
    """Kept so recorded histories and older inputs decode: a worker refuses a variable it did
    not configure for an endpoint."""
    script: Script | None = None
    price: ModelPrice | None = None
    """The model's price, when the price table has none or the deal differs from it."""

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            provider, _, name = value.partition(":")
            return {"provider": provider, "name": name}
        return value

    @model_validator(mode="after")
    def _scripted_needs_script(self) -> ModelSpec:
        # "store:<digest>" is how tether itself passes a script by reference.
        if self.provider == "scripted" and self.script is None and not self.name.startswith("store:"):
            raise ValueError(
                "a scripted model needs a script: {'provider': 'scripted', 'script': {'turns': [...]}}"
                " (the CLI's --model scripted:FILE embeds FILE)"
            )
        if self.provider != "scripted" and not self.name:
            raise ValueError(f"model '{self.provider}' needs a name, e.g. '{self.provider}:NAME'")
        if self.provider == "scripted" and self.endpoint is not None:
            raise ValueError("a scripted model has no endpoint: drop \"endpoint\"")
        return self

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.name}" if self.name else self.provider


class Budget(Strict):
    """Limits enforced by the runtime. Each `None` means unlimited."""

    max_steps: int | None = Field(default=50, ge=1)
    """Model turns the run may take."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Input plus output tokens over the whole run."""
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Dollars over the whole run, from the provider's price table."""
    max_seconds: float | None = Field(default=3600, gt=0, le=LONGEST_SECONDS)
    """Wall-clock seconds from the run's start: a durable deadline."""
    max_egress_mb: float | None = Field(default=None, gt=0)
    """MiB through the egress proxy, both ways, over the whole run (`sandbox.network`)."""
    on_exhausted: Literal["stop", "final_answer"] = "stop"
    account: str | None = Field(default=None, pattern=ACCOUNT_NAME_PATTERN)
    """A budget account (`tether account set NAME`) that the run's tokens, dollars and
    sandbox seconds are charged to as well: a ceiling shared by every run that names it."""

    @model_serializer(mode="wrap")
    def _without_no_account(self, handler: SerializerFunctionWrapHandler) -> Any:
        return without_empty(handler(self), "account")


MAX_MEMORY_MB = 1024 * 1024
"""1 TiB: past any host's memory, and within what an engine's byte counts hold (a far larger
value failed only when the sandbox was made, after the run had started)."""
MAX_PIDS = 4 * 1024 * 1024
"""Linux's own ceiling on process ids."""


class SandboxSpec(Strict):
    image: str = "tether-sandbox:latest"
    cpus: float = Field(default=1.0, gt=0, le=64)
    memory_mb: int = Field(default=512, ge=32, le=MAX_MEMORY_MB)
    pids: int = Field(default=128, ge=8, le=MAX_PIDS)
    disk_mb: int = Field(default=256, ge=1, le=MAX_MEMORY_MB)  # memory-backed: the same ceiling
    network: Literal["none"] | NetworkPolicy = "none"
    """`"none"`: no network at all. `{"allow": [...]}`: those destinations only, over HTTP and
    HTTPS through the runtime's egress proxy (`contracts/network.py`)."""
    tool_timeout_seconds: float = Field(default=60, gt=0, le=LONGEST_SECONDS)
    output_limit_bytes: int = Field(default=64 * 1024, ge=256, le=8 * 1024 * 1024)
    runtime: str | None = None
    """An OCI runtime such as `runsc` (gVisor), where installed; the engine's default otherwise."""
    snapshots: Literal["on_wait", "every_step", "off"] = "on_wait"
    """When the workspace is snapshot into the content store: `on_wait`, before an idle
    sandbox is released; `every_step`, also after each step's tool calls (what a fork at any
    step needs); `off`, never, and so the sandbox is never released while the run waits."""
    idle_release_seconds: float = Field(default=60, gt=0, le=LONGEST_SECONDS)
    """How long a run waits (for a person, for a slot) holding its sandbox before it
    snapshots the workspace and removes the container; the next tool call restores it."""

    @field_validator("network", mode="before")
    @classmethod
    def _network_says_one_thing(cls, value: Any) -> Any:
        # The union's own error would list both forms' failures; say the one that applies.
        if isinstance(value, str) and value != "none":
            raise ValueError(f'network is "none" or {{"allow": [HOST[:PORT], ...]}}, not {value!r}')
        if isinstance(value, dict):
            try:
                return NetworkPolicy.model_validate(value)
            except ValidationError as error:
                raise ValueError("; ".join(_message(problem) for problem in error.errors())) from None
        return value


def _message(problem: Any) -> str:
    where = ".".join(str(part) for part in problem["loc"])
    text = str(problem["msg"]).removeprefix("Value error, ")
    return f"network.{where}: {text}" if where else text


class ApprovalPolicy(Strict):
    tools: list[str] = Field(default_factory=list)
    timeout_seconds: float | None = Field(default=None, gt=0, le=LONGEST_SECONDS)
    """An approval not given in time counts as a denial."""


class AgentRunInput(Strict):
    """The input of an `AgentRun`. Everything but `task` has a default."""

    task: str = Field(min_length=1)
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(provider="openai", name="gpt-4o-mini"))
    fallback_models: list[ModelSpec] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=lambda: list(ALL_TOOLS))
    """Built-in sandbox tools and the worker's function tools, by name; an unknown name
    fails the run at start, listing the tools there are."""
    budget: Budget = Field(default_factory=Budget)
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    mcp_servers: list[McpServer] = Field(default_factory=list)
    """MCP servers whose tools the run may call, offered as `<server>__<tool>`."""
    continue_as_new_after_steps: int | None = Field(default=500, ge=1)
    """Steps per workflow execution before the run continues as new (also when Temporal
    suggests it). Invisible in the result; keeps any run's history small."""
    files: dict[str, str] = Field(default_factory=dict)
    """Files placed in /workspace before the first tool call: `{name: "sha256:<digest>"}`,
    the contents in the content store (`tether run --file`, `start_run(files=...)`)."""
    artifacts: list[str] = Field(default_factory=list)
    """Globs in /workspace (`out/**`, `*.md`) collected into the store when the run ends,
    however it ends, and listed in its result."""
    system_prompt: str = (
        "You are an agent that solves tasks by running tools in an isolated Linux sandbox. "
        "Your working directory is /workspace. Answer with the result when you are done."
    )
    fork: ForkOrigin | None = None
    """Set on a fork (`tether fork`, `fork_run`): the run and step it starts from, and what
    it inherits of them. None for any other run."""
    agents: AgentsPolicy | None = None
    """Sub-agents: offers the model the `delegate` tool (`docs/agents.md`). None: no such tool."""

    @model_serializer(mode="wrap")
    def _without_no_agents(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Absent when unset, so an input carried on (continue-as-new) reads as it did before.
        return without_empty(without_empty(handler(self), "agents"), "fork")

    @field_validator("task", mode="before")
    @classmethod
    def _task_is_text(cls, value: Any) -> Any:
        # pydantic would coerce nothing here, but say plainly what is wrong.
        if not isinstance(value, str):
            raise ValueError(f"task must be a string, got {type(value).__name__}")
        return value

    @field_validator("files")
    @classmethod
    def _files_stay_in_workspace(cls, files: dict[str, str]) -> dict[str, str]:
        if len(files) > MAX_FILES:
            raise ValueError(f"{len(files)} files; a run may be given at most {MAX_FILES}")
        for name, reference in files.items():
            problem = name_problem(name)
            if problem:
                raise ValueError(problem)
            digest_of(reference)
        return files

    @field_validator("artifacts")
    @classmethod
    def _globs_stay_in_workspace(cls, globs: list[str]) -> list[str]:
        for glob in globs:
            problem = name_problem(glob, what="artifact glob")
            if problem:
                raise ValueError(problem)
        return globs


def without_empty(data: Any, field: str) -> Any:
    """`data` without `field` when it is empty: a field added later is absent where it says
    nothing, so that a reader older than the field reads what it did before."""
    if isinstance(data, dict) and not data.get(field):
        data.pop(field, None)
    return data


class StepRecord(Strict):
    """One step of the transcript: what the model said and what its tools returned."""

    step: int
    model: str
    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    note: str | None = None
    messages: list[str] = Field(default_factory=list)
    """What people said to the run (`send_message`) that the model read at this step, as
    they typed it, in order. Absent when none."""
    snapshot: str | None = None
    """With `sandbox.snapshots: every_step`, the workspace's snapshot (`sha256:` of its
    manifest, `contracts/snapshots.py`) after this step's tool calls. Absent otherwise."""

    head: str | None = None
    """The conversation after this step's model answer (a node's digest in the store): where
    a fork at this step starts. Absent for a step without an answer."""
    result_refs: list[str | None] = Field(default_factory=list)
    """Each tool call's result message as stored (None for a call that did not run, whose
    result the runtime wrote): with `head`, the whole conversation after this step. Absent
    while the calls have not all ended."""
    inherited: bool = False
    """True for a fork's step taken from the run it was forked from: nothing ran again."""

    @model_serializer(mode="wrap")
    def _without_empty_messages(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for field in ("messages", "snapshot", "head", "result_refs", "inherited"):
            data = without_empty(data, field)
        return data


class ForkOrigin(Strict):
    """What a fork starts from: a step of another run, its conversation and its workspace
    by digest, so nothing of steps 1 to `at_step` runs again."""

    of: str = Field(min_length=1)
    """The workflow id of the run forked from."""
    at_step: int = Field(ge=1)
    head: str = Field(pattern=r"^[0-9a-f]{64}$")
    """The conversation after step `at_step`, its tool results included: a node's digest."""
    snapshot: str | None = None
    """The workspace after step `at_step` (`sha256:` of its manifest); None when the run
    forked from never had one."""
    message: str | None = None
    """A person's message the fork's first model call reads after the inherited steps."""
    steps: list[StepRecord] = Field(default_factory=list)
    """The inherited steps the origin's transcript still held, for the fork's transcript."""


# `AgentRunInput.fork` names ForkOrigin, defined after it: resolved here, once, at import,
# not at first use (inside the workflow sandbox, where the module's names are not found).
AgentRunInput.model_rebuild()


class AgentRunResult(Strict):
    status: FinalStatus
    stop_reason: str
    output: str | None = None
    steps: int
    usage: Usage
    seconds: float
    cost_known: bool = True
    """False when a model with no known price served a step: `usage.cost_usd` counts only
    the steps whose price is known."""
    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    """The files the input's `artifacts` globs matched, stored by digest."""
    skipped_artifacts: list[SkippedArtifact] = Field(default_factory=list)
    """Matched entries that were not collected (links, devices, oversized...), and why."""
    delegated_steps: int = 0
    """Steps the run's sub-agents took (theirs included), beside its own `steps`; absent when 0."""
    egress_bytes: int = 0
    """Bytes the run's tools, and its sub-agents', moved through the egress proxy; absent when 0."""

    @model_serializer(mode="wrap")
    def _without_nothing_new(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Absent when nothing, so a reader older than these fields reads what it did before.
        return without_empty(without_empty(handler(self), "delegated_steps"), "egress_bytes")


class PendingApproval(Strict):
    """A tool call waiting for a person. Every field past `arguments` has a default, so
    statuses of runs that started before them still decode."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    """As history holds them: a string over 2,000 characters is cut in the middle (`capped`).
    `tether status` reads them whole from the content store."""
    arguments_digest: str | None = None
    """`sha256:` of the canonical JSON of the whole arguments (`contracts/digests.py`):
    exactly what runs if the call is approved. An `approve` that names a digest must name
    this one. None for a call asked for before tether recorded digests."""
    capped: bool = False
    """Whether `arguments` were cut: then only the store's copy shows what runs."""
    assistant_ref: str | None = None
    """The stored assistant message that asked for the call: its whole arguments and text."""
    text: str | None = None
    """What the model said in the step that asked for the call (its reason), capped like
    `arguments`."""
    text_digest: str | None = None
    """`sha256:` of the whole text, when `text` was cut."""


class BudgetView(Strict):
    """Usage against each limit, as shown by the `status` query."""

    steps: int
    max_steps: int | None
    tokens: int
    max_tokens: int | None
    cost_usd: float
    max_cost_usd: float | None
    seconds: float
    max_seconds: float | None


class RunStatus(Strict):
    state: RunPhase
    step: int
    budget: BudgetView
    usage: Usage
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    sandbox: str | None = None
    last_error: str | None = None
    model: str
    children_waiting: list[ChildWaiting] = Field(default_factory=list)
    """Calls of the run's sub-agents (and theirs) waiting for a person, with the command
    that answers each."""
