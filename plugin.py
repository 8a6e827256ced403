"""TetherPlugin: adds tether to an application's own Temporal Client and Worker.

    client = await Client.connect("localhost:7233", plugins=[TetherPlugin()])
    worker = Worker(client, task_queue="agents")          # AgentRun and every activity

On a client it sets tether's data converter (pydantic; with TETHER_ENCRYPTION_KEYS, the
encryption codec) and tracing. On a worker it registers the `AgentRun`, `SandboxReaper`
and `BudgetAccount` workflows and the activities, built with their dependencies
(the conversation store, the model providers, this host's Docker engine). Tool calls must
reach the engine that holds a run's sandbox, so a worker with activities also polls its own
host queue (`<task_queue>@<worker_id>`) for them, beside the queue it was given.

`TetherPlugin(activities=False)` makes a workflow-only worker; `workflows=False`, a sandbox
host that runs activities only. `TETHER_ROLE` narrows either further (`workflows`: no
sandbox, no Docker engine; `sandbox`: no workflow, no model call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.plugin import SimplePlugin
from temporalio.worker import Interceptor as WorkerInterceptor
from temporalio.worker import Worker, WorkerConfig, WorkerDeploymentConfig
from tether import metrics, tracing
from tether.activities.accounts import AccountActivities
from tether.activities.artifacts import ArtifactActivities
from tether.activities.children import ChildActivities
from tether.activities.drain import DrainGate
from tether.activities.functions import FunctionActivities
from tether.activities.mcp import McpActivities
from tether.activities.model import ModelActivities
from tether.activities.sandboxes import SandboxActivities
from tether.activities.snapshots import SnapshotActivities
from tether.activities.tools import ToolActivities, no_sandbox_here
from tether.contracts import SandboxSpec
from tether.egress.proxy import EgressProxy, default_python
from tether.encryption import data_converter
from tether.llm import ProviderOptions, Providers
from tether.sandbox.admission import SandboxSlots, default_limit
from tether.sandbox.engine import connect_engine
from tether.sandbox.hardening import SANDBOX_UID
from tether.sandbox.manager import SandboxManager
from tether.sandbox.pool import WarmPool
from tether.settings import TetherSettings
from tether.store import ContentAddressed, Conversations, open_blobs
from tether.store.sealed import sealed
from tether.tools import FunctionTools
from tether.workflows.account import BudgetAccount
from tether.workflows.agent import AgentRun
from tether.workflows.reaper import SandboxReaper
from tether.workflows.telemetry import RunTelemetry

log = logging.getLogger("tether.worker")
SHUTDOWN_GRACE = timedelta(seconds=10)
HEARTBEAT_THROTTLE = timedelta(seconds=2)
"""Heartbeats carry a model's streamed text: sent often enough to watch."""


@dataclass
class HostActivities:
    """The activities that need this host's Docker engine, built with it, and the warm pool."""

    sandboxes: SandboxActivities
    tools: ToolActivities
    mcp: McpActivities
    artifacts: ArtifactActivities
    snapshots: SnapshotActivities
    pool: WarmPool | None
    gate: DrainGate
    """Closed when the host drains: no new tool call, on the host queue or here."""

    def shared(self) -> list[Callable[..., object]]:
        """Served on the shared queue: any worker with an engine may take them (MCP servers
        reached over HTTP among them)."""
        return [self.sandboxes.acquire, self.sandboxes.reap, self.mcp.list_tools, self.mcp.call]

    def on_host(self) -> list[Callable[..., object]]:
        """Served on this worker's own queue: they need the engine that holds the sandbox
        (MCP servers that run in it among them)."""
        return [self.tools.call_tool, self.sandboxes.release, self.sandboxes.reap,
                self.mcp.list_tools, self.mcp.call, self.artifacts.collect, self.snapshots.snapshot]


class TetherPlugin(SimplePlugin):
    def __init__(
        self, settings: TetherSettings | None = None, *,
        workflows: bool = True, activities: bool = True,
        tools: Sequence[Callable[..., Any]] = (),
    ) -> None:
        """`tools`: function tools given as the functions themselves, beside the settings'
        `TETHER_TOOLS` entries (a function needs no importable name this way)."""
        self.settings = settings or TetherSettings()
        self._tool_functions = list(tools)
        # TETHER_ROLE narrows what the flags allow: a `workflows` host runs no sandbox, a
        # `sandbox` host no workflow and no model call.
        role = self.settings.role
        self.with_workflows = workflows and role != "sandbox"
        self.with_models = activities and role != "sandbox"
        """Model calls and function tools: the activities that need keys and credentials."""
        self.with_sandboxes = activities and role != "workflows"
        """Sandboxes and the tool calls in them: the activities that need a Docker engine."""
        self._conversations: Conversations | None = None
        self._model: ModelActivities | None = None
        self._children: ChildActivities | None = None
        self._function_tools: FunctionTools | None = None
        self._function_calls: FunctionActivities | None = None
        self._host: HostActivities | None = None
        super().__init__(
            "tether.TetherPlugin",
            data_converter=data_converter(self.settings.key_ring),
            # Spans as the settings say; the run's metrics (and span) from RunTelemetry.
            interceptors=[*tracing.interceptors(self.settings), RunTelemetry()],
            workflow_runner=tracing.workflow_runner,
            workflows=[AgentRun, SandboxReaper, BudgetAccount] if self.with_workflows else None,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        if self._is_host_worker(config):
            return config  # the host queue's worker, made below: it has its activities
        config = super().configure_worker(config)
        # The Worker fills every option with its default before plugins see them: keep a
        # longer grace and a shorter heartbeat throttle where the application asked for one.
        config["graceful_shutdown_timeout"] = max(
            config.get("graceful_shutdown_timeout") or SHUTDOWN_GRACE, SHUTDOWN_GRACE)
        config["max_heartbeat_throttle_interval"] = min(
            config.get("max_heartbeat_throttle_interval") or HEARTBEAT_THROTTLE, HEARTBEAT_THROTTLE)
        if self.settings.deployment_name and self.settings.build_id:
            # The shared queue's worker joins its deployment version, and a run stays pinned
            # to the version it started on. Set here, not on the workflow's definition: the
            # server refuses a versioning behavior from a worker that is not versioned. The
            # host queue's worker is left unversioned: it is this host's alone, and a run's
            # calls must reach this host whatever version it runs.
            config["deployment_config"] = WorkerDeploymentConfig(
                version=WorkerDeploymentVersion(self.settings.deployment_name, self.settings.build_id),
                use_worker_versioning=True, default_versioning_behavior=VersioningBehavior.PINNED)
        added: list[Callable[..., object]] = []
        if self.with_workflows:
            # Local activities run on the worker that runs the workflow: a tool call runs
            # here when this worker holds the run's sandbox.
            children = self.child_activities()
            added += [self.model_activities().start_conversation, children.delegate_arguments,
                      children.store_tool_message,
                      self.host_activities(config["client"], config["task_queue"]).tools.call_tool_here
                      if self.with_sandboxes else no_sandbox_here]
            # A run's budget account is charged from the run's own worker (local activities).
            accounts = AccountActivities(endpoints=self.settings.model_endpoint_policy,
                                         max_output_tokens=self.settings.max_output_tokens)
            added += [accounts.reserve, accounts.commit, accounts.release]
        if not (self.with_models or self.with_sandboxes):
            # Workflows and their local activity only: activity tasks are other hosts'.
            config["no_remote_activities"] = True
        if self.with_models:
            added += [self.model_activities().call_model, self.function_activities().call_function]
            # A sub-agent its parent found started, and attached to.
            added.append(self.child_activities().await_child)
        if self.with_sandboxes:
            added += self.host_activities(config["client"], config["task_queue"]).shared()
        config["activities"] = [*(config.get("activities") or []), *added]
        return config

    def child_activities(self) -> ChildActivities:
        if self._children is None:
            self._children = ChildActivities(conversations=self._store())
        return self._children

    def model_activities(self) -> ModelActivities:
        if self._model is None:
            settings = self.settings
            self._model = ModelActivities(
                conversations=self._store(), functions=self._functions(),
                mcp_servers=settings.mcp_endpoint_policy, brokered_env=settings.brokered_env,
                max_file_bytes=settings.max_file_mb << 20,
                providers=Providers(ProviderOptions(
                    timeout_seconds=settings.model_timeout_seconds,
                    max_output_tokens=settings.max_output_tokens,
                    endpoints=settings.model_endpoint_policy)))
        return self._model

    def host_activities(self, client: Client, task_queue: str) -> HostActivities:
        """This worker's sandbox and tool activities, built once, on the Docker engine that
        answers here (failing fast, saying what to do, when none does)."""
        if self._host is None:
            settings = self.settings
            sandboxes = SandboxManager(connect_engine())
            gate = DrainGate(settings.worker_id)
            pool = (WarmPool(sandboxes, worker=settings.worker_id, size=settings.pool_size)
                    if settings.pool_size else None)
            # Started on first need: a host whose runs ask for no network never runs it.
            egress = EgressProxy(python=settings.egress_python or default_python(),
                                 directory=settings.data_dir.resolve() / "egress",
                                 on_decision=metrics.egress_recorder(metrics.meter_of(client)),
                                 brokered=settings.brokered_env, ca_file=settings.egress_ca_file,
                                 sandbox_uid=SANDBOX_UID)
            self._host = HostActivities(
                sandboxes=SandboxActivities(
                    sandboxes=sandboxes, client=client, worker_id=settings.worker_id,
                    host_queue=settings.host_task_queue(task_queue), pool=pool,
                    ttl_seconds=settings.sandbox_ttl_seconds, blobs=self._store().blobs,
                    max_file_bytes=settings.max_file_mb << 20,
                    host_wait_seconds=settings.host_wait_seconds,
                    slots=SandboxSlots(
                        sandboxes, worker=settings.worker_id,
                        limit=settings.max_sandboxes or default_limit(SandboxSpec().memory_mb),
                        unclaimed=lambda: pool.idle if pool else 0),
                    egress=egress),
                tools=ToolActivities(conversations=self._store(), sandboxes=sandboxes,
                                     worker_id=settings.worker_id, gate=gate, egress=egress),
                mcp=McpActivities(conversations=self._store(), sandboxes=sandboxes,
                                  servers=settings.mcp_endpoint_policy),
                artifacts=ArtifactActivities(blobs=self._store().blobs, sandboxes=sandboxes,
                                             max_file_bytes=settings.max_file_mb << 20),
                snapshots=SnapshotActivities(blobs=self._store().blobs, sandboxes=sandboxes),
                pool=pool,
                gate=gate,
            )
        return self._host

    def function_activities(self) -> FunctionActivities:
        if self._function_calls is None:
            self._function_calls = FunctionActivities(
                tools=self._functions(), conversations=self._store())
        return self._function_calls

    def _functions(self) -> FunctionTools:
        """The worker's function tools, loaded once: a bad entry stops the worker at start."""
        if self._function_tools is None:
            self._function_tools = FunctionTools.load(self.settings.tools, self._tool_functions)
        return self._function_tools

    def _store(self) -> Conversations:
        if self._conversations is None:
            # Encrypted under the digests, when keys are set: blobs stay named by their
            # plaintext, whatever the backend (store/sealed.py says why).
            blobs = sealed(open_blobs(self.settings.store_location), self.settings.key_ring)
            self._conversations = Conversations(ContentAddressed(blobs))
        return self._conversations

    def _is_host_worker(self, config: WorkerConfig) -> bool:
        # A client that carries this plugin hands it to every worker made from it,
        # the host queue's own included.
        return self._host is not None and config.get("task_queue") == self._host.sandboxes.host_queue

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        config = worker.config()
        if not self.with_sandboxes or self._is_host_worker(config):
            await next(worker)
            return
        host = self.host_activities(config["client"], config["task_queue"])
        async with self._host_worker(config["client"], host):
            await next(worker)

    @contextlib.asynccontextmanager
    async def _host_worker(self, client: Client, parts: HostActivities) -> AsyncIterator[None]:
        """Sweeps what a predecessor left, starts the warm pool, serves the host queue and
        sweeps this engine every `sweep_seconds` for as long as the main worker runs. When
        the main worker stops of its own accord (SIGTERM), drains: no new tool calls, the
        ones in flight finish, and the host stays until its runs have moved their sandboxes
        elsewhere (or `drain_seconds` pass), then removes what is left."""
        # Before the pool starts, so every unclaimed pool container found is a dead worker's.
        report = await parts.sandboxes.sweep()
        if report.removed:
            log.info("removed %d orphaned sandbox(es): %s", len(report.removed), report.removed)
        # The tracing interceptors the main worker got, unless the client already has them.
        on_client = client.config().get("interceptors") or []
        traced = [i for i in self.interceptors or []
                  if isinstance(i, WorkerInterceptor) and i not in on_client]
        gate = parts.gate
        host = Worker(client, task_queue=parts.sandboxes.host_queue, activities=parts.on_host(),
                      interceptors=[*traced, gate], graceful_shutdown_timeout=SHUTDOWN_GRACE)
        if parts.pool is not None:
            parts.pool.start()
        serving = asyncio.create_task(host.run())
        metrics.watch_live_sandboxes(parts.sandboxes.sandboxes, self.settings.worker_id,
                                     metrics.meter_of(client), until=serving)
        sweeping = asyncio.create_task(parts.sandboxes.sweep_every(self.settings.sweep_seconds))
        drained = False
        try:
            yield
            await self._drain(parts, gate)
            drained = True
        finally:
            sweeping.cancel()
            with contextlib.suppress(Exception):
                await host.shutdown()
            with contextlib.suppress(Exception):
                await serving
            if parts.pool is not None:
                await parts.pool.drain()
            if drained:
                left = await parts.sandboxes.remove_all()
                if left:
                    log.warning("drained: removed %d sandbox(es) whose runs had not moved on "
                                "within %g s: %s", len(left), self.settings.drain_seconds, left)
            if parts.sandboxes.egress is not None:
                await parts.sandboxes.egress.stop()

    async def _drain(self, parts: HostActivities, gate: DrainGate) -> None:
        gate.close()
        if parts.pool is not None:
            await parts.pool.drain()  # unclaimed containers serve no run
        log.info("draining %s: tool calls in flight finish; runs move to other hosts "
                 "(at most %g s)", self.settings.worker_id, self.settings.drain_seconds)
        moved = await parts.sandboxes.wait_until_moved_on(
            lambda: gate.in_flight, self.settings.drain_seconds)
        log.info("drained %s%s", self.settings.worker_id, "" if moved else " (grace period over)")
