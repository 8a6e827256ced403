"""Records the event histories the replay gate (tests/workflows/test_replay_gate.py) replays.

    .venv/bin/python scripts/record_histories.py [--overwrite]

From here on, a change to workflow code that running workflows would see (the commands a
step issues, their order, timers, conditions) must go behind `workflow.patched` or Worker
Versioning: the committed histories of every released version must still replay. When the
version in pyproject.toml changes, run this script to record that version's histories, and
commit them beside the old ones, which stay.

It starts a private Temporal dev server on a free port and a real tether worker (real
sandboxes on the machine's Docker engine, the scripted model), runs one small scripted run
per path, and writes each run's history, every execution of it, to
`tests/workflows/histories/<version>-<path>[-<execution>].json`. A worker is killed -9
mid tool call for the `worker_crash` path; those workers run as processes of their own.
It leaves no container behind and stops the server, however it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from tether.contracts import names

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the suite's own run builders and history readers

from tests.helpers import free_port  # noqa: E402
from tests.scripts import scripted_run, turn  # noqa: E402
from tests.workflows.histories import executions  # noqa: E402
from tests.workflows.worker_process import WorkerProcess  # noqa: E402

HISTORIES = ROOT / "tests" / "workflows" / "histories"
WORKFLOW_ID_PREFIX = "replay-gate-"
"""A recorded run's workflow id is this and its path: the gate replays it under that id."""
WAIT_S = 90


def version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def workflow_id(path: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{path}"


# --- steering -------------------------------------------------------------------------

async def wait_for(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


async def in_state(client: Client, handle: WorkflowHandle, state: str) -> None:
    from tether.client import get_status

    async def reached() -> bool:
        return (await get_status(client, handle.id)).state == state
    await wait_for(reached, state)


async def activity_running(handle: WorkflowHandle, activity_type: str) -> None:
    async def running() -> bool:
        description = await handle.describe()
        return any(p.activity_type.name == activity_type
                   and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                   for p in description.raw_description.pending_activities)
    await wait_for(running, f"a running {activity_type}")


async def approve_then_deny(client: Client, handle: WorkflowHandle) -> None:
    from tether.client import get_status

    async def waiting(call_id: str) -> bool:
        status = await get_status(client, handle.id)
        return [p.call_id for p in status.pending_approvals] == [call_id]

    await wait_for(lambda: waiting("1-0"), "the first approval")
    await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
    await wait_for(lambda: waiting("2-0"), "the second approval")
    await handle.execute_update(names.UPDATE_APPROVE, args=["2-0", False, "not this one"])


async def cancel_mid_tool(client: Client, handle: WorkflowHandle) -> None:
    await in_state(client, handle, "running_tools")
    await activity_running(handle, "tool_call")
    await handle.execute_update(names.UPDATE_CANCEL, "enough")


@dataclass
class RunPath:
    run: dict[str, Any]
    status: str
    """The status the run must end with, or the recording is refused."""
    steer: Callable[[Client, WorkflowHandle], Awaitable[None]] | None = None
    executions: int = 1
    crash: bool = False
    """Run on worker processes, killing the first -9 mid tool call (see `record_crash`)."""


PATHS: dict[str, RunPath] = {
    "completed": RunPath(scripted_run("say hi", turn(shell="echo hi"), turn("{{last_output}}")),
                       "completed"),
    "tool_failure": RunPath(scripted_run(
        "fail twice",
        {"text": None, "tool_calls": [{"name": "teleport", "arguments": {"to": "mars"}},
                                      {"name": "shell", "arguments": {"command": "echo oops >&2; exit 3"}}]},
        turn("saw both fail")), "completed"),
    "approval": RunPath(scripted_run("guarded", turn(shell="echo a"), turn(shell="echo b"), turn("ok"),
                                   approval={"tools": ["shell"]}), "completed", approve_then_deny),
    "cancel": RunPath(scripted_run("wait", turn(shell="sleep 60"), turn("never")),
                    "cancelled", cancel_mid_tool),
    "budget_exhausted": RunPath(scripted_run("steps", turn(shell="echo 1"), turn(shell="echo 2"),
                                           turn("summary"),
                                           budget={"max_steps": 2, "on_exhausted": "final_answer"}),
                              "budget_exhausted"),
    "continue_as_new": RunPath(scripted_run("long", turn(shell="echo 1"), turn(shell="echo 2"),
                                          turn("ok"), continue_as_new_after_steps=2),
                             "completed", executions=2),
    "worker_crash": RunPath(scripted_run("survive", turn(shell="echo begun; sleep 4; echo ended"),
                                       turn("{{last_output}}")), "completed", crash=True),
}


# --- recording ------------------------------------------------------------------------

async def record(client: Client, name: str, path: RunPath, task_queue: str) -> list[WorkflowHistory]:
    from tether.client import start_run

    handle = await start_run(client, path.run, workflow_id=workflow_id(name), task_queue=task_queue)
    if path.steer is not None:
        await path.steer(client, handle)
    result = await asyncio.wait_for(handle.result(), timeout=WAIT_S)
    if result.status != path.status:
        raise RuntimeError(f"{name}: the run ended {result.status} ({result.stop_reason}), "
                           f"not {path.status}")
    histories = await executions(client, handle)
    if len(histories) != path.executions:
        raise RuntimeError(f"{name}: {len(histories)} executions, not {path.executions}")
    return histories


async def record_crash(client: Client, name: str, path: RunPath, *, worker_id: str,
                       log_file: Path) -> list[WorkflowHistory]:
    """Starts the run on a worker process, kills it -9 a second into the tool call, and lets
    a successor with the same worker id (so the same host queue and container) finish it."""
    queue = f"record-crash-{uuid.uuid4().hex[:8]}"
    workers = [WorkerProcess(client, task_queue=queue, worker_id=worker_id, log_file=log_file)]
    try:
        await workers[0].start()

        async def kill_mid_tool(client: Client, handle: WorkflowHandle) -> None:
            await activity_running(handle, "tool_call")
            await asyncio.sleep(1)  # well inside the call: its side effect has begun
            await workers[0].kill()
            workers.append(WorkerProcess(client, task_queue=queue, worker_id=worker_id,
                                         log_file=log_file))
            await workers[1].start()

        return await record(client, name, RunPath(path.run, path.status, kill_mid_tool), queue)
    finally:
        for worker in workers:
            await worker.stop()


def remove_sandboxes(worker_ids: list[str]) -> list[str]:
    """Removes the containers these worker ids made; returns the names of those it found."""
    from tether.sandbox.engine import connect_engine
    from tether.sandbox.manager import LABEL_WORKER, SandboxManager

    manager = SandboxManager(connect_engine())
    found = []
    for worker_id in worker_ids:
        for container in manager.managed(**{LABEL_WORKER: worker_id}):
            found.append(container.name)
            manager.remove(container.id)
    return found


async def record_all(names: list[str], data_dir: Path) -> dict[str, list[WorkflowHistory]]:
    from tether.client import connect
    from tether.embedded import temporal
    from tether.settings import TetherSettings
    from tether.worker import serve

    port = free_port()
    address = f"127.0.0.1:{port}"
    os.environ["TEMPORAL_ADDRESS"] = address
    server = temporal.start(port=port, ui_port=None, db_file=None, log_file=data_dir / "temporal.log",
                            wait_seconds=90)
    worker_ids = [os.environ["TETHER_WORKER_ID"], f"record-crash-{uuid.uuid4().hex[:8]}"]
    recorded: dict[str, list[WorkflowHistory]] = {}
    try:
        client = await connect(address=address)
        stop = asyncio.Event()
        queue = f"record-{uuid.uuid4().hex[:8]}"
        worker = asyncio.create_task(serve(client, stop, task_queue=queue, settings=TetherSettings()))
        try:
            await asyncio.sleep(0.5)
            if worker.done():
                worker.result()
            for name in names:
                path = PATHS[name]
                print(f"recording {name} ...", flush=True)
                if path.crash:
                    recorded[name] = await record_crash(client, name, path, worker_id=worker_ids[1],
                                                        log_file=data_dir / "crash-workers.log")
                else:
                    recorded[name] = await record(client, name, path, queue)
        finally:
            stop.set()
            await worker
    finally:
        try:
            left = remove_sandboxes(worker_ids)
            if left:
                print(f"removed sandboxes left behind: {left}", file=sys.stderr)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except Exception:
                server.kill()
                server.wait()
    return recorded


def write(recorded: dict[str, list[WorkflowHistory]], ver: str) -> list[Path]:
    HISTORIES.mkdir(parents=True, exist_ok=True)
    written = []
    for name, histories in recorded.items():
        for n, history in enumerate(histories, start=1):
            suffix = f"-{n}" if len(histories) > 1 else ""
            file = HISTORIES / f"{ver}-{name}{suffix}.json"
            file.write_text(history.to_json() + "\n")
            written.append(file)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overwrite", action="store_true",
                        help="replace this version's histories (only before it is released)")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help=f"the paths to record (default: all): {', '.join(PATHS)}")
    args = parser.parse_args()
    unknown = set(args.paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; the paths are {', '.join(PATHS)}")
    names = args.paths or list(PATHS)
    ver = version()
    existing = sorted(HISTORIES.glob(f"{ver}-*.json"))
    if existing and not args.overwrite:
        print(f"{len(existing)} histories of {ver} exist already; a released version's histories "
              "must not change. Bump the version in pyproject.toml, or pass --overwrite.",
              file=sys.stderr)
        return 1

    # Before anything builds TetherSettings: a store and a worker identity of the script's own.
    data_dir = Path(tempfile.mkdtemp(prefix="tether-record-"))
    os.environ["TETHER_DATA_DIR"] = str(data_dir)
    os.environ["TETHER_WORKER_ID"] = f"record-{uuid.uuid4().hex[:8]}"
    try:
        recorded = asyncio.run(record_all(names, data_dir))
    except BaseException:
        print(f"recording failed; logs kept in {data_dir}", file=sys.stderr)
        raise
    for file in existing:  # the recorded paths' old files go, leaving no stale execution
        if file.stem.removeprefix(f"{ver}-").rstrip("-0123456789") in recorded:
            file.unlink()
    for file in write(recorded, ver):
        print(f"wrote {file.relative_to(ROOT)} ({file.stat().st_size:,} bytes)")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
