"""What a new user ran into: one line saying what is wrong and what to do, never a traceback;
a clock that tells the truth; links that stay whole; messages in the words a person typed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

import pytest
from temporalio.client import Client
from tether import client as tether

from tests.helpers import ROOT, run_command, tether_cli, wait_for
from tests.scripts import scripted_run, turn

cli = tether_cli


def one_clear_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2, err  # the error, and what to do
    for needle in needles:
        assert needle in err, err


async def waiting_run(client: Client, queue: str) -> str:
    handle = await tether.start_run(
        client, scripted_run("wait", turn(shell="echo hi"), turn("done"), approval={"tools": ["shell"]}),
        task_queue=queue)
    return handle.id


async def test_starting_a_run_with_the_id_of_a_running_one_says_so(
    temporal_client: Client, temporal_address: str, worker: str
):
    run_id = await waiting_run(temporal_client, worker)
    code, _, err = await cli(temporal_address, worker, "run", "again", "--id", run_id,
                             "--model", "scripted:examples/demo.json")
    one_clear_line(code, err, f"a run with id {run_id} is already running", f"tether watch {run_id}")
    await tether.cancel(temporal_client, run_id, "done")


async def test_status_of_a_run_no_worker_serves_says_so_at_once(
    temporal_client: Client, temporal_address: str, worker: str
):
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    run_id = await waiting_run(temporal_client, nobody)
    try:
        for command in ("status", "transcript", "watch"):
            started = time.monotonic()
            code, _, err = await cli(temporal_address, worker, command, run_id)
            one_clear_line(code, err, f"no worker polls task queue '{nobody}'", "tether worker")
            # It used to hang past 30 s. The answer itself takes seconds (a 3 s query at
            # most), but a whole CLI process on a busy 2-core machine has taken 10 s, so the
            # bound tells "answers" from "hangs" without timing the machine.
            assert time.monotonic() - started < 25
    finally:
        await tether.get_run(temporal_client, run_id).terminate("test over")


async def test_run_says_when_no_worker_polls_its_queue_instead_of_waiting_silently(
    temporal_client: Client, temporal_address: str
):
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "run", "hello", "--model", "scripted:examples/demo.json",
        "--wait",
        "--id", f"run-{nobody}", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TETHER_TASK_QUEUE": nobody, "TEMPORAL_ADDRESS": temporal_address})
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert f"no worker polls task queue '{nobody}'" in line and "tether worker" in line
        assert process.returncode is None  # and it goes on waiting for one
    finally:
        process.terminate()
        await process.wait()
        await tether.get_run(temporal_client, f"run-{nobody}").terminate("test over")


async def test_status_shows_the_real_time_a_run_has_waited_for_a_person(
    temporal_client: Client, temporal_address: str, worker: str
):
    run_id = await waiting_run(temporal_client, worker)

    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, run_id)).pending_approvals)

    await wait_for(waiting, what="the call to wait for approval")
    await asyncio.sleep(3)
    # The run has had no workflow task for 3 s: its clock would say well under a second.
    assert (await tether.get_status(temporal_client, run_id)).budget.seconds >= 3
    code, out, err = await cli(temporal_address, worker, "status", run_id, "--json")
    assert code == 0, err
    assert json.loads(out)["budget"]["seconds"] >= 3
    await tether.cancel(temporal_client, run_id, "done")


async def test_extend_speaks_of_the_flags_typed_and_says_when_a_limit_is_unlimited_already(
    temporal_client: Client, temporal_address: str, worker: str
):
    run_id = await waiting_run(temporal_client, worker)
    code, _, err = await cli(temporal_address, worker, "extend", run_id, "--steps", "0")
    one_clear_line(code, err, "--steps must be raised by a positive number")
    assert "max_steps" not in err
    code, out, err = await cli(temporal_address, worker, "extend", run_id, "--steps", "5",
                               "--tokens", "100")
    assert code == 0, err
    assert "--steps 5: raised to 55" in out
    assert "--tokens 100: this limit is unlimited already; nothing changed" in out
    code, _, err = await cli(temporal_address, worker, "extend", run_id)
    one_clear_line(code, err, "name a limit to raise", "--steps")
    await tether.cancel(temporal_client, run_id, "done")


@pytest.mark.parametrize(("model", "suggested"), [
    ("gpt-4o-mini", "openai:gpt-4o-mini"),
    ("claude-3-5-haiku-latest", "anthropic:claude-3-5-haiku-latest")])
async def test_a_model_without_a_provider_gets_a_suggestion(model: str, suggested: str):
    code, _, err = await run_command(f"{sys.executable} -m tether.cli run hello --model {model}")
    one_clear_line(code, err, f"--model {model} names no provider", f"--model {suggested}")


async def test_the_web_ui_link_stays_on_one_line_in_a_narrow_terminal(
    temporal_address: str, worker: str
):
    code, out, err = await cli(temporal_address, worker, "run", "hello", "--model",
                               "scripted:examples/demo.json", "--wait", COLUMNS="40")
    assert code == 0, err
    [link_line] = [line for line in out.splitlines() if "web UI" in line]
    assert "http://localhost:8233/namespaces/default/workflows/run-" in link_line
    assert link_line.rstrip().endswith(link_line.rstrip().rsplit("/", 1)[-1])
    run_id = link_line.rstrip().rsplit("/", 1)[-1]
    assert run_id.startswith("run-") and len(run_id) == len("run-") + 12
