"""What a tool is to a run: its name, what the model is told of it, and where it runs.

A run's tools are resolved once, when it starts, from the names in its input: the built-in
sandbox tools below, and the functions the worker was given (`TETHER_TOOLS`). The specs are
stored by digest and their routes recorded in the run's history, so a replay never depends on
what a worker's registry holds today.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tether.contracts.messages import ToolCall

ToolKind = Literal["sandbox", "function", "mcp", "delegate"]
MCP_SEPARATOR = "__"
"""An MCP server's tools are offered to the model as `<server>__<tool>`."""


class ToolRoute(BaseModel):
    """What the workflow needs to send a call to its tool: no description, no schema."""

    kind: ToolKind = "sandbox"
    timeout_seconds: float | None = None
    """A function tool's own timeout; sandbox tools use the run's `tool_timeout_seconds`."""
    retries: int = Field(default=0, ge=0)
    """How often a function tool's transient failures are retried."""
    server: str | None = None
    """An MCP tool's server, by its name in the run's `mcp_servers`."""
    remote_name: str | None = None
    """An MCP tool's own name on its server."""


class ToolSpec(ToolRoute):
    """A tool as the model is told of it."""

    name: str
    description: str
    parameters: dict[str, Any]
    """The arguments' JSON Schema."""

    def route(self) -> ToolRoute:
        return ToolRoute.model_validate(self.model_dump(include=set(ToolRoute.model_fields)))


def _sandbox_tool(name: str, description: str, **properties: dict[str, Any]) -> ToolSpec:
    return ToolSpec(name=name, description=description, parameters={
        "type": "object", "properties": properties, "required": list(properties)})


BUILTIN_TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    _sandbox_tool("python", "Run a Python 3 program in the sandbox. Returns exit code, stdout and stderr.",
                  code={"type": "string", "description": "The program's source."}),
    _sandbox_tool("shell", "Run a shell command (sh -c) in the sandbox's /workspace.",
                  command={"type": "string"}),
    _sandbox_tool("read_file", "Read a text file from the sandbox workspace.",
                  path={"type": "string"}),
    _sandbox_tool("write_file", "Write a text file into the sandbox workspace.",
                  path={"type": "string"}, content={"type": "string"}),
)}
"""The tools every sandbox has, run by its executor."""

_LIMITS = {"type": "object", "description": (
    "The sub-agent's own limits (max_steps, max_tokens, max_cost_usd, max_seconds): carved "
    "from what this run has left, and at most that; its use is charged to this run.")}
DELEGATE_SPEC = ToolSpec(
    name="delegate", kind="delegate",
    description=(
        "Hand a task to a sub-agent: a run of its own, with its own sandbox, that works on it "
        "and answers. Returns its final answer, or why it stopped. Calls in one turn run at "
        "once. Without model, tools, system_prompt, sandbox or approval, the sub-agent has "
        "this run's; given, they may narrow this run's, never widen them."),
    parameters={"type": "object", "required": ["task"], "properties": {
        "task": {"type": "string", "description": "What the sub-agent is to do, whole."},
        "model": {"description": "'provider:name' or a model object; this run's by default."},
        "tools": {"type": "array", "items": {"type": "string"}},
        "system_prompt": {"type": "string"},
        "sandbox": {"type": "object"},
        "approval": {"type": "object"},
        "budget": _LIMITS,
    }},
)
RUNTIME_TOOLS: dict[str, ToolSpec] = {DELEGATE_SPEC.name: DELEGATE_SPEC}
"""Tools the workflow itself runs, offered by what the run's input asks (`agents`)."""


class FunctionCallInput(BaseModel):
    """One call of a function tool, run on a worker in the worker's own environment."""

    workflow_id: str
    step: int
    index: int
    call: ToolCall
    """As history holds it: long arguments capped."""
    assistant_ref: str | None = None
    """The stored assistant message that asked for the call: the full arguments are in it."""

    @property
    def idempotency_key(self) -> str:
        return call_key(self.workflow_id, self.step, self.index)


def call_key(workflow_id: str, step: int, index: int) -> str:
    """A tool call's idempotency key: stable across retries, workers and continue-as-new, so
    the same call always has the same key, whatever kind of tool runs it."""
    return f"{workflow_id}/{step}/{index}"


class McpServer(BaseModel):
    """An MCP server whose tools a run may call: one the worker configures, by name alone
    (`TETHER_MCP_SERVERS` says its URL and the variables its headers are read from), or a
    stdio server started inside the run's own sandbox (`command`, `where: "sandbox"`).
    `url` and `headers_env` are kept so older inputs decode: a worker refuses them unless
    they are what it configured under that name (or, with `TETHER_ALLOW_INPUT_URLS`, a URL
    with no headers)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    command: list[str] | None = Field(default=None, min_length=1)
    where: Literal["sandbox"] | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers_env: dict[str, str] = Field(default_factory=dict)
    """Header name → the name of the worker's environment variable holding its value."""
    tools: list[str] | None = None
    """Only these of the server's tools; all of them when unset."""

    @model_validator(mode="after")
    def _one_kind(self) -> McpServer:
        if self.command is not None and (self.url is not None or self.headers_env):
            raise ValueError(f"MCP server {self.name!r} needs either a command or a url, not both")
        if self.command is not None and self.where != "sandbox":
            raise ValueError(
                f"MCP server {self.name!r}: a command runs in the run's sandbox: add \"where\": \"sandbox\"")
        if self.command is None and self.where is not None:
            raise ValueError(f"MCP server {self.name!r}: a server the worker reaches runs where it is; "
                             "drop \"where\" (or give the command to run in the sandbox)")
        return self


class McpListInput(BaseModel):
    """Lists the tools of a run's MCP servers, adds them to its toolset, and returns both."""

    toolset: str
    servers: list[McpServer]
    container_id: str | None = None
    """The run's sandbox, for servers that run in it."""
    started_at: str | None = None
    """When the sandbox's container started, as its handle recorded: a later start means its
    engine restarted it, empty, and the listing takes it as lost. None in histories from before."""


class McpListOutput(BaseModel):
    toolset: str
    routes: dict[str, ToolRoute]


class McpCallInput(BaseModel):
    workflow_id: str
    step: int
    index: int
    call: ToolCall
    assistant_ref: str | None = None
    server: McpServer
    remote_name: str
    container_id: str | None = None
    started_at: str | None = None
    """When the sandbox's container started, as its handle recorded: a later start means its
    engine restarted it, empty, and the call takes it as lost. None in histories from before."""
    timeout_seconds: float = 60.0

    @property
    def idempotency_key(self) -> str:
        return call_key(self.workflow_id, self.step, self.index)
