"""Creating, reaching and removing sandbox containers on this worker's Docker engine."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container

from sandbox.channel import ChannelClosed, ExecutorChannel
from sandbox.engine import engine
from sandbox.exec_fallback import run_with_docker_exec
from sandbox.hardening import container_kwargs
from workflows.types import SandboxSpec, ToolResult

LABEL_WORKFLOW = "tether.workflow_id"
LABEL_RUN = "tether.run_id"
LABEL_CREATED = "tether.created_at"
LABEL_MANAGED = "tether.managed"
LABEL_WORKER = "tether.worker"
EXECUTOR_LABEL = "tether.executor"
READY_TIMEOUT_S = 20.0


class SandboxGone(RuntimeError):
    """The run's container no longer exists (removed, or its host's engine was reset)."""


class SandboxBroken(RuntimeError):
    """The image or settings can't make a working sandbox: retrying will not help."""


def labels_for(workflow_id: str, run_id: str, worker: str) -> dict[str, str]:
    return {
        LABEL_WORKFLOW: workflow_id,
        LABEL_RUN: run_id,
        LABEL_CREATED: datetime.now(UTC).isoformat(timespec="seconds"),
        LABEL_MANAGED: "1",
        LABEL_WORKER: worker,
    }


def create_sandbox(spec: SandboxSpec, labels: dict[str, str]) -> Container:
    """Creates and starts a hardened container, and waits until its executor answers."""
    name = f"tether-{uuid.uuid4().hex[:12]}"
    try:
        container = engine().containers.create(**container_kwargs(spec, name=name, labels=labels))
    except ImageNotFound:
        raise SandboxBroken(
            f"sandbox image {spec.image!r} is not on this engine; build it with `make image`"
        ) from None
    except APIError as error:
        if error.is_client_error():
            raise SandboxBroken(
                f"the engine refused the sandbox settings: {error.explanation}") from None
        raise
    try:
        container.start()
        if has_executor(container):
            _wait_until_ready(container.id)
    except BaseException:
        remove_sandbox(container.id)
        raise
    return container


def has_executor(container: Container) -> bool:
    return container.labels.get(EXECUTOR_LABEL) == "1"


def _wait_until_ready(container_id: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            channel(container_id).request({"op": "ping"}).result(timeout=5)
            return
        except (ChannelClosed, TimeoutError) as error:
            forget_channel(container_id)
            if time.monotonic() > deadline:
                raise SandboxBroken(f"the sandbox's executor never answered: {error}") from None
            time.sleep(0.05)


def remove_sandbox(container_id: str) -> bool:
    """Removes the container and its anonymous volumes. False if it was already gone."""
    forget_channel(container_id)
    try:
        engine().api.remove_container(container_id, force=True, v=True)
        return True
    except NotFound:
        return False
    except APIError as error:
        if "already in progress" in str(error):
            return True
        raise


def find_sandbox(container_id: str) -> Container:
    try:
        container = engine().containers.get(container_id)
    except NotFound:
        raise SandboxGone(f"sandbox {container_id[:12]} no longer exists") from None
    if container.status != "running":
        raise SandboxGone(f"sandbox {container_id[:12]} is {container.status}")
    return container


def list_sandboxes(**label_filters: str) -> list[Container]:
    """Every container tether created on this engine (running or not)."""
    filters = [f"{LABEL_MANAGED}=1", *(f"{k}={v}" for k, v in label_filters.items())]
    return engine().containers.list(all=True, filters={"label": filters})


_channels: dict[str, ExecutorChannel] = {}
_channels_lock = threading.Lock()


def channel(container_id: str) -> ExecutorChannel:
    """This process's stream to the container's executor, attaching on first use."""
    with _channels_lock:
        existing = _channels.get(container_id)
        if existing is not None and not existing.closed:
            return existing
        created = _channels[container_id] = ExecutorChannel(container_id)
        return created


def forget_channel(container_id: str) -> None:
    with _channels_lock:
        existing = _channels.pop(container_id, None)
    if existing is not None:
        existing.close()


async def run_tool(
    container_id: str,
    *,
    tool: str,
    arguments: dict[str, Any],
    key: str,
    timeout_s: float,
    limit_bytes: int,
    tick: Callable[[], Awaitable[None] | None] | None = None,
) -> ToolResult:
    """Runs one tool call exactly once per `key`, calling `tick` about once a second.

    Cancelling the awaiting task cancels the call in the container: its process group dies.
    """
    container = await asyncio.to_thread(find_sandbox, container_id)
    if not has_executor(container):
        return await asyncio.to_thread(
            run_with_docker_exec, container, tool, arguments, key, timeout_s, limit_bytes
        )
    request = {"op": "run", "key": key, "kind": tool, "args": arguments,
               "timeout": timeout_s, "limit": limit_bytes}
    stream = await asyncio.to_thread(channel, container_id)
    pending = stream.request(request)
    response_future = asyncio.wrap_future(pending)
    try:
        while True:
            done, _ = await asyncio.wait({response_future}, timeout=1.0)
            if done:
                break
            if tick is not None:
                maybe = tick()
                if maybe is not None:
                    await maybe
    except asyncio.CancelledError:
        await asyncio.to_thread(_cancel_in_container, container_id, key)
        raise
    response = response_future.result()
    if not response.get("ok"):
        raise SandboxBroken(f"executor refused the call: {response.get('error')}")
    return ToolResult.model_validate(response["result"])


def _cancel_in_container(container_id: str, key: str) -> None:
    try:
        channel(container_id).request({"op": "cancel", "key": key}).result(timeout=5)
    except (ChannelClosed, TimeoutError):
        pass  # the container is gone or hung; release or the reaper removes it
