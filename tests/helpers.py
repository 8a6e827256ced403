"""What the tests share: the suite's settings and parts (its sandbox manager, its store),
and small helpers for waiting and reading histories. Imported by tests; conftest only
holds fixtures."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from docker.models.containers import Container
from google.protobuf.json_format import MessageToDict
from tether.llm import ProviderOptions, Providers
from tether.sandbox.engine import connect_engine
from tether.sandbox.manager import SandboxManager
from tether.settings import TetherSettings
from tether.store import Conversations, LocalContentStore


@functools.cache
def suite_settings() -> TetherSettings:
    """The suite's settings: conftest points the data dir and worker id at its own first."""
    return TetherSettings()


@functools.cache
def sandboxes() -> SandboxManager:
    """The tests' own manager for the machine's engine (the worker has one of its own)."""
    return SandboxManager(connect_engine())


@functools.cache
def conversations() -> Conversations:
    """The suite's conversation store, the one its workers write."""
    return Conversations(LocalContentStore(suite_settings().store_path))


def providers() -> Providers:
    """Providers as a worker would build them from the environment as it is now."""
    settings = TetherSettings()
    return Providers(ProviderOptions(timeout_seconds=settings.model_timeout_seconds,
                                     max_output_tokens=settings.max_output_tokens,
                                     endpoints=settings.model_endpoint_policy))


async def kill_the_executor(container_id: str) -> None:
    """SIGKILLs a sandbox's executor from the host, as a crash would: nothing inside the
    container can (it is the container's init, and not dumpable)."""
    state = await asyncio.to_thread(sandboxes().engine.api.inspect_container, container_id)
    os.kill(state["State"]["Pid"], signal.SIGKILL)


def sandboxes_of(workflow_id: str) -> list[Container]:
    return sandboxes().for_run(workflow_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(predicate: Any, *, timeout: float = 30, every: float = 0.1, what: str = "") -> None:
    """Polls `predicate` (sync or async) until it is true, or fails the test."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(every)


async def history_text(handle: Any) -> str:
    """A run's whole event history as text, with every payload decoded: the JSON form keeps
    payloads base64-encoded, where a search for a secret would find nothing either way."""

    def decoded(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (base64.b64decode(v).decode("utf-8", "replace")
                        if k == "data" and isinstance(v, str) else decoded(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [decoded(item) for item in node]
        return node

    history = await handle.fetch_history()
    return json.dumps([decoded(MessageToDict(event)) for event in history.events])


ROOT = Path(__file__).resolve().parents[1]


async def run_command(command: str, **kwargs: Any) -> tuple[int, str, str]:
    """Runs a shell command without blocking the event loop the suite's worker shares."""
    process = await asyncio.create_subprocess_shell(
        command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        **{k: v for k, v in kwargs.items() if k != "shell"},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def tether_cli(temporal_address: str, worker: str, *args: str, **env: str) -> tuple[int, str, str]:
    """`tether ARGS` as a person types it, against the suite's server and queue; wide enough
    that tables don't wrap. Returns the exit code, stdout and stderr."""
    quoted = " ".join(f"'{a}'" for a in args)
    return await run_command(
        f"{sys.executable} -m tether.cli {quoted}",
        env={**os.environ, "TETHER_TASK_QUEUE": worker, "TEMPORAL_ADDRESS": temporal_address,
             "COLUMNS": "200", **env})
