"""tether's configuration: one typed object, read from the environment in one place.

`TetherSettings()` reads the environment once, where a process starts (the worker, the CLI,
the demo), and is passed down to what needs it; nothing below reads the environment itself.
docs/configuration.md's table lists every field here (a test checks it).

Model API keys and MCP header values are the one exception, on purpose: the worker's
endpoints (`model_endpoints`, `mcp_servers`) name the *variable* holding each, and it is read
at call time, so a rotated key needs no restart. A run names endpoints, never variables.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from tether.contracts.files import DEFAULT_MAX_FILE_MB
from tether.encryption.keys import KeyRing
from tether.llm.endpoints import ModelEndpoint, ModelEndpoints
from tether.store.backends import check_store_url, file_url
from tether.tools.mcp_servers import McpEndpoint, McpEndpoints

DEFAULT_TASK_QUEUE = "agents"
DEFAULT_NAMESPACE = "default"
DEFAULT_ADDRESS = "127.0.0.1:7233"
NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
"""An endpoint's or MCP server's name, as a run gives it."""


def default_data_dir() -> Path:
    """The XDG data directory's `tether`: absolute, so that a command run anywhere reads
    the store and the server the user's worker uses (a relative XDG_DATA_HOME is invalid
    by the spec, and ignored)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "tether"


class SettingsError(ValueError):
    """A setting the environment gives that tether cannot use, in one line naming its variable."""


def read_settings() -> TetherSettings:
    """`TetherSettings()` for a process's start: a bad variable is one `SettingsError` line
    that names it, not pydantic's report in the fields' own names."""
    try:
        return TetherSettings()
    except ValidationError as error:
        raise SettingsError("; ".join(_problem(e) for e in error.errors())
                            + " (docs/configuration.md lists every setting)") from None


def _problem(error: Any) -> str:
    location = [str(part) for part in error["loc"]]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not location:
        return message
    field = TetherSettings.model_fields.get(location[0])
    variable = environment_variable(location[0]) if field else location[0]
    inside = f" ({'.'.join(location[1:])})" if location[1:] else ""
    value = error.get("input")
    shown = f"={value}" if isinstance(value, str) and not _secret(location[0]) else ""
    return f"{variable}{shown}{inside}: {message}"


def _secret(name: str) -> bool:
    return name in ("encryption_keys", "codec_token")


def environment_variable(name: str) -> str:
    """The variable a field is read from: its first alias, else `TETHER_<NAME>`."""
    alias = TetherSettings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"TETHER_{name.upper()}"


def host_and_port(value: str) -> str:
    """`HOST:PORT`, checked: a bind address for a server tether starts."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9464)")
    return value


class TetherSettings(BaseSettings):
    """Every setting a tether process reads. Unset variables take the defaults shown."""

    model_config = SettingsConfigDict(
        env_prefix="TETHER_", env_ignore_empty=True, extra="ignore", frozen=True)

    temporal_address: str = Field(
        default=DEFAULT_ADDRESS, validation_alias=AliasChoices("TEMPORAL_ADDRESS", "temporal_address"))
    """The Temporal frontend; with nothing set, the embedded dev server is started here."""
    namespace: str = Field(
        default=DEFAULT_NAMESPACE, validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "namespace"))
    temporal_profile: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_PROFILE", "temporal_profile"))
    """The profile of Temporal's client config file (TEMPORAL_CONFIG_FILE) to connect with;
    `tether --profile` sets it. TEMPORAL_* variables and the fields above override it."""
    encryption_keys: SecretStr | None = None
    """`id1:BASE64,id2:BASE64`: AES-256-GCM keys for payloads and the store; the first
    encrypts, all decrypt. Unset: nothing is encrypted."""
    codec_token: SecretStr | None = None
    """The token `tether codec-server` asks of every request (`Authorization: Bearer`, or
    the endpoint's first path segment); unset, it listens on loopback only."""
    task_queue: str = DEFAULT_TASK_QUEUE
    """The shared queue for workflows, model calls and sandbox acquisition."""
    worker_id: str = Field(default_factory=socket.gethostname)
    """Names this host's sandbox queue (`<task_queue>@<worker_id>`). Stable across restarts,
    so a restarted worker reattaches to the containers its predecessor left running."""
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    """The dev server's SQLite file, the conversation store, the trace file: one place for
    every process of a user, whatever its working directory (`$XDG_DATA_HOME/tether`, else
    `~/.local/share/tether`)."""
    store_dir: Path | None = None
    """The conversation store's directory; `<data_dir>/store` when unset."""
    store_url: str | None = None
    """The conversation store as a URL (`file:///path`, `s3://bucket/prefix`, `gs://...`,
    `az://...`): one that every host reaches when workers run on several. Overrides `store_dir`."""
    role: Literal["both", "workflows", "sandbox"] = "both"
    """What this worker runs: `workflows` (workflows, model calls, function tools; no Docker
    engine), `sandbox` (sandboxes and the tool calls in them), or `both`."""
    sweep_seconds: float = Field(default=60.0, gt=0, le=300)
    """How often each sandbox host sweeps its own engine for sandboxes of closed runs."""
    drain_seconds: float = Field(default=60.0, ge=0)
    """On SIGTERM, how long a sandbox host waits for tool calls in flight to finish and for
    its runs to move their sandboxes elsewhere, before it removes what is left and exits."""
    host_wait_seconds: float = Field(default=60.0, gt=0)
    """How long a run waits for the host that holds its sandbox before it declares that host
    gone and continues in a new sandbox elsewhere (stamped on each sandbox this host makes)."""
    max_sandboxes: int | None = Field(default=None, ge=1)
    """Live sandboxes this worker hosts at most; runs beyond wait for a slot
    (`waiting_for_sandbox`). Unset: as many of the default `memory_mb` as fit in three
    quarters of the host's memory."""
    deployment_name: str | None = None
    """Worker Versioning: the Worker Deployment this worker belongs to. With `build_id`, a
    run stays pinned to the version it started on; unset (both): no versioning."""
    build_id: str | None = None
    """Worker Versioning: this worker's version within `deployment_name` (a git sha, say)."""
    pool_size: int = Field(default=0, ge=0)
    """Warm sandboxes kept ready per worker; 0 (off) keeps every container labelled with its run."""
    sandbox_ttl_seconds: float | None = Field(default=None, gt=0)
    """The reaper removes sandboxes older than this whatever their run's state; unset: no limit."""
    max_file_mb: int = Field(default=DEFAULT_MAX_FILE_MB, gt=0)
    """The largest file a run may be given (`--file`, `files`) or leave as an artifact, in
    MiB: the CLI refuses bigger uploads, the worker bigger files and artifacts."""
    egress_python: str | None = None
    """The interpreter the egress proxy runs under, one with mitmproxy 11 (it can't share
    tether's environment); unset: `egress/bin/python` in tether's own venv, which `make deps`
    makes. Used only by a sandbox host, and only once a run's network allows hosts."""
    brokered_env: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated names of this worker's environment variables that a run's
    `sandbox.network.secrets` may name: the egress proxy adds their values to requests for
    the run's secret hosts. A run naming any other variable is refused at its start."""
    egress_ca_file: Path | None = None
    """A PEM file of CAs the egress proxy trusts, beside the system's, for the hosts it adds
    secrets for (a private registry's CA; the tests' own). Sandboxes with secrets trust it too."""
    model_timeout_seconds: float = Field(default=120.0, gt=0)
    """How long one HTTP request to a model provider may take."""
    max_output_tokens: int = Field(default=4096, gt=0)
    """The cap on a model's answer, for APIs that require one (Anthropic's Messages)."""
    model_endpoints: dict[str, ModelEndpoint] = Field(default_factory=dict)
    """JSON: name → `{"provider", "base_url", "api_key_env"}`: the model servers a run may name
    (`"model": {..., "endpoint": NAME}`), each with the variable its key is read from."""
    mcp_servers: dict[str, McpEndpoint] = Field(default_factory=dict)
    """JSON: name → `{"url", "headers_env": {HEADER: VARIABLE}}`: the HTTP MCP servers a run
    may name (`"mcp_servers": [{"name": NAME}]`), each with the variables its headers carry."""
    allow_input_urls: bool = False
    """For local development only: a run may give a model `base_url` or an MCP `url` of its
    own, reached with no key or header of the worker's (`1` to opt in)."""
    trace_file: str | None = None
    """Where workers append finished spans as JSON lines (`off`: nowhere);
    `<data_dir>/traces.jsonl` when unset."""
    trace_content: bool = False
    """Whether spans carry message contents, tool arguments and results (`1` to opt in)."""
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT",
                                                    "otel_exporter_otlp_endpoint"))
    """OpenTelemetry's standard variable: with it, workers export spans over OTLP/HTTP to
    `<endpoint>/v1/traces` instead of the trace file."""
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                                                    "otel_exporter_otlp_traces_endpoint"))
    """OpenTelemetry's standard variable: the whole URL spans go to, over the one above."""
    otel_exporter_otlp_protocol: str | None = Field(
        default=None, validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "otel_exporter_otlp_protocol"))
    """OpenTelemetry's standard variable; tether speaks `http/protobuf` only."""
    metrics_bind: str | None = None
    """`HOST:PORT` where a worker serves Prometheus metrics at `/metrics`; unset: none."""
    ui_port: int = Field(default=8233, gt=0, lt=65536)
    """The embedded dev server's Web UI port."""
    tools: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Function tools this worker serves: comma-separated `module` or `module:function`
    entries, importable on the worker (`tether worker --tools` adds to them)."""
    ui_url: str | None = None
    """The Web UI links tether prints; `http://localhost:<ui_port>` when unset."""

    @field_validator("tools", "brokered_env", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [entry.strip() for entry in value.split(",") if entry.strip()]
        return value

    @field_validator("egress_ca_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file: name a PEM file of CA certificates")
        return value

    @field_validator("model_endpoints", "mcp_servers")
    @classmethod
    def _endpoint_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an endpoint name: letters, digits, _ and - "
                                 "(at most 32)")
        return value

    @property
    def model_endpoint_policy(self) -> ModelEndpoints:
        """Where this worker's model calls may go, and which key variables they may read."""
        return ModelEndpoints(self.model_endpoints, allow_input_urls=self.allow_input_urls)

    @property
    def mcp_endpoint_policy(self) -> McpEndpoints:
        """Which HTTP MCP servers this worker reaches, and which variables their headers carry."""
        return McpEndpoints(self.mcp_servers, allow_input_urls=self.allow_input_urls)

    @field_validator("encryption_keys")
    @classmethod
    def _key_ring(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            KeyRing.parse(value.get_secret_value())  # fails at start, naming the bad entry
        return value

    @property
    def key_ring(self) -> KeyRing | None:
        """The encryption keys, or None when none are set."""
        return KeyRing.parse(self.encryption_keys.get_secret_value()) if self.encryption_keys else None

    @field_validator("metrics_bind")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        return None if value is None else host_and_port(value)

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @model_validator(mode="after")
    def _versioning_whole(self) -> TetherSettings:
        if (self.deployment_name is None) != (self.build_id is None):
            raise ValueError("Worker Versioning needs both TETHER_DEPLOYMENT_NAME and "
                             "TETHER_BUILD_ID (or neither)")
        return self

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        return None if value is None else check_store_url(value)

    @property
    def store_path(self) -> Path:
        return (self.store_dir or self.data_dir / "store").resolve()

    @property
    def store_location(self) -> str:
        """The conversation store's URL: `store_url`, else the directory's `file://` URL."""
        return self.store_url or file_url(self.store_path)

    @property
    def trace_path(self) -> Path | None:
        if self.trace_file is not None and self.trace_file.lower() == "off":
            return None
        return Path(self.trace_file) if self.trace_file else self.data_path / "traces.jsonl"

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """Where spans go over OTLP, as OpenTelemetry's variables say; None: not over OTLP."""
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None

    @property
    def address_configured(self) -> bool:
        """Whether TEMPORAL_ADDRESS was given, rather than defaulted to the embedded server."""
        return "temporal_address" in self.model_fields_set

    def host_task_queue(self, shared_queue: str | None = None) -> str:
        """This worker's own queue: tool calls for the sandboxes its engine holds go there."""
        return f"{shared_queue or self.task_queue}@{self.worker_id}"

    def ui_link(self, workflow_id: str, run_id: str | None = None) -> str:
        base = self.ui_url or f"http://localhost:{self.ui_port}"
        suffix = f"/{run_id}" if run_id else ""
        return f"{base}/namespaces/{self.namespace}/workflows/{workflow_id}{suffix}"
