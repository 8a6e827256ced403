"""Advice that pointed the wrong way now names the real problem: a worker that can't decrypt
a run, `tether dev` joining a server it did not start, a codec server's port already taken.
Each runs the command as a person would."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from temporalio.client import Client
from tether import client as tether
from tether.embedded import temporal as embedded
from tether.encryption import KeyRing
from tether.settings import TetherSettings

from tests.helpers import ROOT, free_port, run_command, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

KEY_A = KeyRing.generate("key-a")
KEY_B = KeyRing.generate("key-b")


async def keyed_worker(client: Client, queue: str, keys: str, log: Path) -> WorkerProcess:
    worker = WorkerProcess(client, task_queue=queue, worker_id=queue, log_file=log,
                           env={"TETHER_ENCRYPTION_KEYS": keys})
    await worker.start()
    return worker


async def read_with_key_a(temporal_address: str, queue: str, *args: str) -> tuple[int, str]:
    code, _, err = await run_command(
        f"{sys.executable} -m tether.cli {' '.join(args)}",
        env={**os.environ, "TEMPORAL_ADDRESS": temporal_address, "TETHER_TASK_QUEUE": queue,
             "TETHER_ENCRYPTION_KEYS": KEY_A, "COLUMNS": "200"})
    return code, err


def names_the_missing_key(code: int, err: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "check the workflow id" not in err, err
    assert "cannot decode the run's payloads" in err, err
    assert "encrypted with key 'key-a'" in err and "(it holds 'key-b')" in err, err
    assert "the workers' TETHER_ENCRYPTION_KEYS" in err, err


async def test_reading_a_run_a_worker_cannot_decrypt_names_the_key_it_lacks(
    temporal_address: str, docker_engine, tmp_path: Path
):
    queue = f"keyless-{uuid.uuid4().hex[:8]}"
    plain = await tether.connect(TetherSettings(), address=temporal_address)
    keyed = await tether.connect(TetherSettings(encryption_keys=KEY_A), address=temporal_address)
    worker = await keyed_worker(plain, queue, KEY_A, tmp_path / "a.log")
    try:
        done = await tether.start_run(keyed, scripted_run("secret", turn("done")), task_queue=queue)
        assert (await done.result()).status == "completed"
    finally:
        await worker.stop()
    # The run's worker is replaced by one without its key: it can neither answer about the
    # finished run (a query replays its history) nor run a new one.
    worker = await keyed_worker(plain, queue, KEY_B, tmp_path / "b.log")
    try:
        names_the_missing_key(*await read_with_key_a(temporal_address, queue, "transcript", done.id))
        names_the_missing_key(*await read_with_key_a(temporal_address, queue, "status", done.id))
        stuck = await tether.start_run(keyed, scripted_run("secret", turn("done")), task_queue=queue)
        names_the_missing_key(*await read_with_key_a(temporal_address, queue, "status", stuck.id))
        await stuck.terminate("test done")
    finally:
        await worker.stop()


async def test_a_codec_server_on_a_taken_port_says_so_and_by_what_before_any_banner():
    port = free_port()
    env = {**os.environ, "TETHER_ENCRYPTION_KEYS": KEY_A, "COLUMNS": "200"}
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "codec-server", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await wait_for(lambda: embedded.answers(f"127.0.0.1:{port}"), what="the first codec server")
        code, out, err = await run_command(
            f"{sys.executable} -m tether.cli codec-server --port {port}", env=env)
        assert code == 2, err
        assert out == "", out  # no banner for a server that never listens
        assert "Traceback" not in err and "uvicorn" not in err.lower(), err
        [line, hint] = err.strip().splitlines()
        assert f"port {port} on 127.0.0.1 is taken" in line, err
        assert f"tether codec-server --port {port}" in line and f"pid {first.pid}" in line, err
        assert "--port" in hint, err
    finally:
        first.terminate()
        await first.wait()
