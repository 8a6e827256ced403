"""TetherTestEnvironment: a Temporal dev server and a tether worker of a test's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from temporalio import client as temporal_client
from temporalio import worker as temporal_worker
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker
from tether import client as tether_client
from tether._testing.no_engine import NoEngine
from tether._testing.run import RunFailed, RunHandle
from tether._testing.server import DevServer, start_dev_server
from tether.contracts import AgentRunInput, AgentRunResult
from tether.plugin import TetherPlugin
from tether.sandbox.engine import EngineUnavailable, connect_engine
from tether.settings import TetherSettings
from tether.workflows.run_input import parse_input

Plugin = temporal_client.Plugin | temporal_worker.Plugin
END_SECONDS = 10.0
"""How long, on exit, the runs still going have to end once cancelled."""


class TetherTestEnvironment:
    """Starts a Temporal dev server and a worker with `TetherPlugin`, in-process, for a test:

        async with TetherTestEnvironment(tools=[lookup_order]) as env:
            result = await env.run({"task": "...", "model": scripted(...), "tools": ["lookup_order"]})

    - `tools`: function tools, the functions themselves, beside any `TETHER_TOOLS` names.
    - `plugins`: Temporal plugins of the application's, given to the client (a client plugin)
      or to the worker (a worker plugin only).
    - `settings`: the worker's settings; by default tether's defaults, not the process's
      TETHER_* variables, so a developer's shell changes no test (`settings=TetherSettings()`
      reads them). The store, the task queue and the worker id are always the environment's.
    - `docker`: None uses the Docker engine if one answers; False never does; True requires
      one. Without one, a run that calls a sandbox tool fails saying Docker is needed.

    The conversation store lives in a temporary directory; on exit the runs still going are
    cancelled, the worker stops, its sandboxes are removed, the server is stopped and the
    directory deleted.
    """

    def __init__(
        self, *, tools: Sequence[Callable[..., Any]] = (), plugins: Sequence[Plugin] = (),
        settings: TetherSettings | None = None, docker: bool | None = None,
    ) -> None:
        self._tools = list(tools)
        self._plugins = list(plugins)
        self._base_settings = settings
        self._docker = docker
        self.task_queue = f"tether-test-{uuid.uuid4().hex[:12]}"
        self._directory: Path | None = None
        self._server: DevServer | None = None
        self._client: Client | None = None
        self._worker: Worker | None = None
        self._running: asyncio.Task[None] | None = None
        self._settings: TetherSettings | None = None
        self.docker_engine = False
        """Whether this environment's worker runs sandboxes (a Docker engine answered)."""

    @property
    def client(self) -> Client:
        """A client of the environment's server, with tether's data converter."""
        if self._client is None:
            raise RuntimeError("the TetherTestEnvironment is not started: use `async with`")
        return self._client

    @property
    def settings(self) -> TetherSettings:
        """The settings the environment's worker runs with."""
        if self._settings is None:
            raise RuntimeError("the TetherTestEnvironment is not started: use `async with`")
        return self._settings

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("the TetherTestEnvironment is not started: use `async with`")
        return self._server.address

    async def __aenter__(self) -> TetherTestEnvironment:
        self._directory = Path(tempfile.mkdtemp(prefix="tether-test-"))
        try:
            self._server = await asyncio.to_thread(start_dev_server, self._directory)
            no_engine = await self._engine_or_why()
            self._settings = self._isolated(sandboxes=no_engine is None)
            plugin = TetherPlugin(self._settings, tools=self._tools)
            self._client = await Client.connect(
                self._server.address, namespace="default",
                plugins=[plugin, *(p for p in self._plugins if isinstance(p, temporal_client.Plugin))])
            self._worker = Worker(
                self._client, task_queue=self.task_queue,
                activities=no_engine.activities() if no_engine else [],
                plugins=[p for p in self._plugins if not isinstance(p, temporal_client.Plugin)])
            self._running = asyncio.create_task(self._worker.run())
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self._close()

    async def start(self, input: AgentRunInput | dict[str, Any], *, workflow_id: str | None = None,
                    files: Sequence[str | os.PathLike[str]] = ()) -> RunHandle:
        """Starts a run on the environment's worker, for a test that steers it. A dict that
        is not a valid input raises `RunFailed` with the reason the run would give."""
        if self._running is None:
            raise RuntimeError("the TetherTestEnvironment is not started: use `async with`")
        if not isinstance(input, AgentRunInput):
            try:
                input = parse_input(input)
            except ApplicationError as invalid:
                raise RunFailed(invalid.message, kind=invalid.type) from None
        handle = await tether_client.start_run(
            self.client, input, workflow_id=workflow_id, task_queue=self.task_queue,
            files=files, settings=self.settings)
        return RunHandle(self.client, handle, self._running)

    async def run(self, input: AgentRunInput | dict[str, Any], **options: Any) -> AgentRunResult:
        """Starts a run and returns its `AgentRunResult`; `RunFailed` if it failed."""
        return await (await self.start(input, **options)).result()

    async def _engine_or_why(self) -> NoEngine | None:
        """None when this environment runs sandboxes; otherwise what answers in their place."""
        if self._docker is False:
            return NoEngine("docker=False")
        try:
            (await asyncio.to_thread(connect_engine)).close()
        except EngineUnavailable as unavailable:
            if self._docker:
                raise
            # "no Docker engine answers (WHY); run `make setup` ...": the WHY, for NoEngine's line.
            why = str(unavailable).split("; run ")[0]
            return NoEngine(why.removeprefix("no Docker engine answers (").removesuffix(")"))
        self.docker_engine = True
        return None

    def _isolated(self, *, sandboxes: bool) -> TetherSettings:
        """The given settings with the store, the traces and the worker's identity of this
        environment's own: a test never touches a developer's store or another worker's
        sandboxes, and leaves nothing behind."""
        assert self._directory is not None
        base = self._base_settings or TetherSettings.model_construct()  # defaults, no variables
        return base.model_copy(update={
            "data_dir": self._directory, "store_dir": None, "store_url": None,
            # The tracer provider is one per process and outlives the directory: no trace file.
            "trace_file": "off",
            "task_queue": self.task_queue, "worker_id": self.task_queue,
            "role": "both" if sandboxes else "workflows", "pool_size": 0,
            "deployment_name": None, "build_id": None, "drain_seconds": 0.0,
        })

    async def _end_open_runs(self) -> None:
        """Cancels the runs still going on this environment's queue and waits for them to
        end, each releasing its sandbox: a worker shut down under open runs would leave
        their workflow code to be torn down by the garbage collector, outside Temporal's
        event loop, and tracebacks of that in the test's output. Any not ended within
        END_SECONDS is terminated."""
        assert self._client is not None
        query = f'TaskQueue="{self.task_queue}" AND ExecutionStatus="Running"'
        handles = [self._client.get_workflow_handle(w.id, run_id=w.run_id)
                   async for w in self._client.list_workflows(query)]
        for handle in handles:
            with contextlib.suppress(RPCError):  # it ended meanwhile
                await handle.cancel()
        ending = [asyncio.ensure_future(handle.result()) for handle in handles]
        if ending:
            await asyncio.wait(ending, timeout=END_SECONDS)
        for handle, end in zip(handles, ending, strict=True):
            if not end.done():
                end.cancel()
                with contextlib.suppress(RPCError):
                    await handle.terminate("the TetherTestEnvironment closed")
            with contextlib.suppress(Exception, asyncio.CancelledError):  # ended, however
                await end

    async def _close(self) -> None:
        if self._client is not None and self._running is not None and not self._running.done():
            with contextlib.suppress(Exception):  # the server gone: nothing left to end
                await self._end_open_runs()
        if self._worker is not None and self._running is not None:
            # Its sandbox host drains at once (drain_seconds=0) and removes its sandboxes.
            with contextlib.suppress(Exception):
                await self._worker.shutdown()
            with contextlib.suppress(Exception):  # a worker that failed said so to its runs
                await self._running
        self._worker = self._running = None
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
            self._server = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
