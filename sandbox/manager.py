"""Creating, claiming, finding, reaching and removing sandbox containers on one engine.

A run's container is made one of two ways: created for the run (it carries the run's labels),
or created ahead of time by a warm pool and claimed by the run (`SandboxManager.claim`). Docker
can't relabel a container, so a claimed one records its run in its executor and takes a name
derived from the run. `SandboxManager.for_run` and `identity_of` answer for both kinds alike.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container
from tether.contracts import SandboxSpec, ToolResult
from tether.sandbox.channel import ChannelClosed, ChannelCorrupt, ExecutorChannel
from tether.sandbox.exec_fallback import run_with_docker_exec
from tether.sandbox.hardening import container_kwargs

LABEL_WORKFLOW = "tether.workflow_id"
LABEL_RUN = "tether.run_id"
LABEL_CREATED = "tether.created_at"
LABEL_MANAGED = "tether.managed"
LABEL_WORKER = "tether.worker"
LABEL_POOL = "tether.pool"
"""On warm-pool containers: the pool (one per worker process) that made them."""
EXECUTOR_LABEL = "tether.executor"
READY_TIMEOUT_S = 20.0
ANSWER_TIMEOUT_S = 5.0
ANSWER_GRACE_S = 15.0
"""How long past a call's own timeout the host waits for the executor's answer. The executor
kills the call at its timeout and sweeps what it left within two seconds; a sandbox that has
not answered by then is taken as lost, whatever its stream does."""


class SandboxGone(RuntimeError):
    """The run's container no longer exists (removed, or its host's engine was reset)."""


def corrupted(container_id: str, error: ChannelCorrupt) -> SandboxGone:
    """A sandbox whose stream carried what its executor never writes: no answer from it can
    be trusted any more, so the run goes on in a new one."""
    return SandboxGone(f"sandbox {container_id[:12]} wrote what its executor never would"
                       f" ({error}): taken as lost")


class SandboxBroken(RuntimeError):
    """The image or settings can't make a working sandbox: retrying will not help."""


class StillRunning(RuntimeError):
    """A call outran its caller's `hand_off_after`: it goes on in the container, and a
    request with the same key joins it. Also raised, before it starts, for a call that no
    request could join (a sandbox without the executor)."""


class SandboxClaimed(RuntimeError):
    """A warm-pool container already serves another run: it is never handed to a second."""


@dataclass(frozen=True)
class RunIdentity:
    workflow_id: str
    run_id: str
    since: str = ""
    """When the container began serving the run (ISO 8601): created for it, or claimed."""


def labels_for(workflow_id: str, run_id: str, worker: str) -> dict[str, str]:
    return {
        LABEL_WORKFLOW: workflow_id,
        LABEL_RUN: run_id,
        LABEL_CREATED: now_label(),
        LABEL_MANAGED: "1",
        LABEL_WORKER: worker,
    }


def now_label() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_name(workflow_id: str) -> str:
    """`tether-<digest of the workflow id>-<the id, made name-safe>-<random>`: the engine
    finds a run's containers by the digest, people read the id, and the random part keeps
    a run's successive sandboxes apart."""
    readable = re.sub(r"[^a-zA-Z0-9_.-]+", "_", workflow_id)[:40]
    return f"{_run_prefix(workflow_id)}{readable}-{uuid.uuid4().hex[:6]}"


def _run_prefix(workflow_id: str) -> str:
    return f"tether-{hashlib.sha256(workflow_id.encode()).hexdigest()[:16]}-"


def has_executor(container: Container) -> bool:
    return container.labels.get(EXECUTOR_LABEL) == "1"


class SandboxManager:
    """One engine's sandboxes, and this process's streams to their executors.

    Built once per worker with the engine it talks to, and handed to whatever makes, reaches
    or removes sandboxes (the activities, the warm pool, the reaper). Blocking calls: async
    callers run them in a thread.
    """

    def __init__(self, engine: docker.DockerClient) -> None:
        self.engine = engine
        self._channels: dict[str, ExecutorChannel] = {}
        self._channels_lock = threading.Lock()

    def create(self, spec: SandboxSpec, labels: dict[str, str], *, name: str,
               egress_dir: str | None = None) -> Container:
        """Creates and starts a hardened container, and waits until its executor answers.
        `egress_dir`: the run's egress socket's directory, which a network allow-list needs."""
        # Fails closed: an allow-list without the proxy would be a run with no network that
        # believes it has one, and a socket for a run without one a way out it never asked for.
        if spec.network != "none" and egress_dir is None:
            raise SandboxBroken("this sandbox's network allows hosts, but no egress socket was opened for it")
        if spec.network == "none" and egress_dir is not None:
            raise SandboxBroken('a sandbox with network "none" gets no egress socket')
        try:
            image_labels = self.engine.images.get(spec.image).labels or {}
            executor = image_labels.get(EXECUTOR_LABEL) == "1"
            if egress_dir is not None and not executor:
                raise SandboxBroken(f"sandbox image {spec.image!r} has no tether executor, which relays"
                                    " the network its run allows; build it with `tether image build`")
            container = self.engine.containers.create(**container_kwargs(
                spec, name=name, labels=labels, executor=executor, egress_dir=egress_dir))
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
                self._wait_until_ready(container.id)
        except BaseException:
            self.remove(container.id)
            raise
        return container

    def _wait_until_ready(self, container_id: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                self.channel(container_id).request({"op": "ping"}).result(timeout=ANSWER_TIMEOUT_S)
                return
            except (ChannelClosed, TimeoutError) as error:
                self.forget_channel(container_id)
                if time.monotonic() > deadline:
                    raise SandboxBroken(f"the sandbox's executor never answered: {error}") from None
                time.sleep(0.05)

    def claim(self, container_id: str, workflow_id: str, run_id: str) -> None:
        """Makes an unclaimed warm-pool container the run's: its executor records the run (and
        refuses any other from then on), and it is renamed after the run for `for_run`.

        Raises SandboxGone, SandboxClaimed, ChannelClosed or TimeoutError when the container
        can't be had; the caller then creates one instead.
        """
        stream = self._open_channel(container_id)
        if stream is None:  # an open stream proves the container has run ever since it was made
            self.find(container_id)
            stream = self.channel(container_id)
        response = stream.request(
            {"op": "bind", "workflow_id": workflow_id, "run_id": run_id, "since": now_label()}
        ).result(timeout=ANSWER_TIMEOUT_S)
        if not response.get("ok"):
            raise SandboxClaimed(str(response.get("error")))
        # Bound first, renamed second: a claim interrupted between the two leaves a container
        # whose executor still names its run, so the reaper can judge it.
        self.engine.api.rename(container_id, run_name(workflow_id))

    def remove(self, container_id: str) -> bool:
        """Removes the container and its anonymous volumes. False if it was already gone."""
        self.forget_channel(container_id)
        try:
            self.engine.api.remove_container(container_id, force=True, v=True)
            return True
        except NotFound:
            return False
        except APIError as error:
            if "already in progress" in str(error):
                return True
            raise

    def find(self, container_id: str, started_at: str | None = None) -> Container:
        """The running container; SandboxGone when it is gone, stopped, or was started again
        since `started_at` (when the run got it): a restarted sandbox comes back empty."""
        try:
            container = self.engine.containers.get(container_id)
        except NotFound:
            raise SandboxGone(f"sandbox {container_id[:12]} no longer exists") from None
        if container.status != "running":
            raise SandboxGone(f"sandbox {container_id[:12]} is {container.status}")
        if container.attrs.get("RestartCount"):
            raise SandboxGone(
                f"sandbox {container_id[:12]} restarted after its executor died; what it held is gone")
        if started_at and container.attrs["State"]["StartedAt"] != started_at:
            # The engine itself restarted it (after its own restart): RestartCount stays 0.
            raise SandboxGone(
                f"sandbox {container_id[:12]} was restarted by its engine; what it held is gone")
        return container

    def started_at(self, container_id: str) -> str:
        """When the container last started, as the engine says: a later start means a restart."""
        return str(self.engine.api.inspect_container(container_id)["State"]["StartedAt"])

    def managed(self, **label_filters: str) -> list[Container]:
        """Every container tether created on this engine (running or not)."""
        filters = [f"{LABEL_MANAGED}=1", *(f"{k}={v}" for k, v in label_filters.items())]
        return self.engine.containers.list(all=True, filters={"label": filters}, ignore_removed=True)

    def for_run(self, workflow_id: str) -> list[Container]:
        """Every container of the run on this engine, created for it or claimed from a pool.

        Both kinds are named by `run_name`, so one query by the run's digest finds them all.
        """
        return self.engine.containers.list(all=True, ignore_removed=True, filters={
            "label": [f"{LABEL_MANAGED}=1"], "name": f"^/{_run_prefix(workflow_id)}"})

    def identity_of(self, container: Container) -> RunIdentity | None:
        """The run a container serves: from its labels when it was created for the run, from its
        executor when the run claimed it from a pool. None while nobody has claimed it.

        Raises ChannelClosed or TimeoutError when a claimed container's executor can't answer.
        """
        labels = container.labels
        if labels.get(LABEL_WORKFLOW):
            return RunIdentity(labels[LABEL_WORKFLOW], labels.get(LABEL_RUN, ""),
                               labels.get(LABEL_CREATED, ""))
        if LABEL_POOL not in labels:
            return None
        response = self.channel(container.id).request({"op": "ping"}).result(timeout=ANSWER_TIMEOUT_S)
        binding = response.get("result", {}).get("binding")
        return RunIdentity(**binding) if binding else None

    def channel(self, container_id: str) -> ExecutorChannel:
        """This process's stream to the container's executor, attaching on first use."""
        with self._channels_lock:
            existing = self._channels.get(container_id)
            if existing is not None and not existing.closed:
                return existing
            created = self._channels[container_id] = ExecutorChannel(self.engine.api, container_id)
            return created

    def _open_channel(self, container_id: str) -> ExecutorChannel | None:
        with self._channels_lock:
            existing = self._channels.get(container_id)
        return existing if existing is not None and not existing.closed else None

    def forget_channel(self, container_id: str) -> None:
        with self._channels_lock:
            existing = self._channels.pop(container_id, None)
        if existing is not None:
            existing.close()

    async def run_tool(
        self,
        container_id: str,
        *,
        tool: str,
        arguments: dict[str, Any],
        key: str,
        timeout_s: float,
        limit_bytes: int,
        tick: Callable[[], Awaitable[None] | None] | None = None,
        started_at: str | None = None,
        hand_off_after: float | None = None,
    ) -> ToolResult:
        """Runs one tool call exactly once per `key`, calling `tick` about once a second.

        Cancelling the awaiting task cancels the call in the container: its process group dies.
        With `hand_off_after`, a call still running after that many seconds is left running
        and `StillRunning` raised: another request with the same key joins it.
        """
        stream = self._open_channel(container_id)
        if stream is None:
            # First call from this process, or the stream broke: check the container before
            # attaching. An open stream needs no check: it ends when the container stops.
            container = await asyncio.to_thread(self.find, container_id, started_at)
            if not has_executor(container):
                if hand_off_after is not None:
                    # `docker exec` can't be joined by another request: the caller that
                    # would hand off must not start it.
                    raise StillRunning(f"sandbox {container_id[:12]} has no executor to join a call in")
                return await asyncio.to_thread(
                    run_with_docker_exec, container, tool, arguments, key, timeout_s, limit_bytes
                )
            stream = await asyncio.to_thread(self.channel, container_id)
        request = {"op": "run", "key": key, "kind": tool, "args": arguments,
                   "timeout": timeout_s, "limit": limit_bytes}
        response_future = asyncio.wrap_future(stream.request(request))
        loop = asyncio.get_running_loop()
        give_up_at = None if hand_off_after is None else loop.time() + hand_off_after
        lost_at = loop.time() + timeout_s + ANSWER_GRACE_S
        try:
            while True:
                until = lost_at if give_up_at is None else min(lost_at, give_up_at)
                wait = min(1.0, max(0.0, until - loop.time()))
                done, _ = await asyncio.wait({response_future}, timeout=wait)
                if done:
                    break
                if give_up_at is not None and loop.time() >= give_up_at:
                    raise StillRunning(f"call {key} is still running after {hand_off_after:g} s")
                if loop.time() >= lost_at:
                    response_future.cancel()
                    self.forget_channel(container_id)
                    raise SandboxGone(
                        f"sandbox {container_id[:12]} did not answer call {key} within"
                        f" {ANSWER_GRACE_S:g} s of its {timeout_s:g} s timeout: taken as lost")
                if tick is not None:
                    maybe = tick()
                    if maybe is not None:
                        await maybe
        except asyncio.CancelledError:
            await asyncio.to_thread(self._cancel_in_container, container_id, key)
            raise
        try:
            response = response_future.result()
        except ChannelCorrupt as error:
            raise corrupted(container_id, error) from None
        if not response.get("ok"):
            raise SandboxBroken(f"executor refused the call: {response.get('error')}")
        return ToolResult.model_validate(response["result"])

    def _cancel_in_container(self, container_id: str, key: str) -> None:
        try:
            self.channel(container_id).request({"op": "cancel", "key": key}).result(timeout=ANSWER_TIMEOUT_S)
        except (ChannelClosed, TimeoutError):
            pass  # the container is gone or hung; release or the reaper removes it
