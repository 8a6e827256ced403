"""`python worker.py` in a process of its own, so a test can kill -9 it mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.helpers import sandboxes

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60


class WorkerProcess:
    def __init__(self, client: Client, *, task_queue: str, worker_id: str, log_file: Path,
                 env: dict[str, str] | None = None) -> None:
        self.client = client
        self.task_queue = task_queue
        self.worker_id = worker_id
        self.log_file = log_file
        self.env = env or {}
        """More variables, over the suite's: a data dir, a store URL, a role of its own."""
        self.process: asyncio.subprocess.Process | None = None

    @property
    def host_queue(self) -> str:
        return f"{self.task_queue}@{self.worker_id}"

    async def start(self) -> None:
        """Starts the worker and waits until it polls its host's queue for tool calls."""
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": os.environ["TEMPORAL_ADDRESS"],
            "TETHER_TASK_QUEUE": self.task_queue,
            "TETHER_WORKER_ID": self.worker_id,
            # The suite's store: the worker that takes over reads what the dead one wrote.
            "TETHER_DATA_DIR": os.environ["TETHER_DATA_DIR"],
            **self.env,
        }
        with self.log_file.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "worker.py", cwd=ROOT, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while not await self._polling():
            if self.process.returncode is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}: {self.log()}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the worker did not start in {READY_TIMEOUT_S} s: {self.log()}")
            await asyncio.sleep(0.2)

    async def _polling(self) -> bool:
        # Pollers are named "<pid>@<host>": a dead predecessor's linger in the list a while.
        # A workflows-only worker has no host queue: it is ready when it polls for workflows.
        assert self.process is not None
        workflows_only = self.env.get("TETHER_ROLE") == "workflows"
        try:
            described = await self.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=self.task_queue if workflows_only else self.host_queue),
                task_queue_type=(TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW if workflows_only
                                 else TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)))
        except RPCError:
            # A busy dev server can cancel one describe ("operation was canceled"): ask again
            # until the start's deadline, as for a worker not polling yet.
            return False
        return any(p.identity.startswith(f"{self.process.pid}@") for p in described.pollers)

    async def kill(self) -> None:
        """kill -9: no shutdown, no cleanup, as a crash or an OOM kill would."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    async def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=timeout)
        except TimeoutError:
            await self.kill()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]


@contextlib.asynccontextmanager
async def worker_fleet(
    client: Client, log_dir: Path, prefix: str,
) -> AsyncIterator[Callable[[], WorkerProcess]]:
    """Makes worker processes that share one queue and one worker id, as successors of a
    killed worker do; stops them all after, and fails if any sandbox of theirs is left."""
    queue, worker_id = f"{prefix}-{uuid.uuid4().hex[:8]}", f"{prefix}-{uuid.uuid4().hex[:8]}"
    made: list[WorkerProcess] = []

    def make() -> WorkerProcess:
        made.append(WorkerProcess(client, task_queue=queue, worker_id=worker_id,
                                  log_file=log_dir / "worker.log"))
        return made[-1]

    yield make
    for process in made:
        await process.stop()
    leftovers = sandboxes().managed(**{"tether.worker": worker_id})
    for container in leftovers:
        sandboxes().remove(container.id)
    assert not leftovers, f"sandboxes left behind: {[c.name for c in leftovers]}"
