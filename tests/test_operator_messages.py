"""A person's message (`tether message`) is part of the conversation: the transcript and
`watch` show it at the step whose model read it, as a person typed it."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from temporalio.client import Client
from tether import client as tether

from tests.helpers import ROOT, tether_cli, wait_for
from tests.scripts import scripted_run, turn

cli = tether_cli
MESSAGE = "use the blue one, not the red"


async def run_with_a_message(temporal_client: Client, temporal_address: str, worker: str) -> str:
    """A run that waits for approval at step 1, is sent a message, then is approved: its
    step 2 is the model's turn that reads the message."""
    handle = await tether.start_run(
        temporal_client, scripted_run("paint", turn("checking", shell="echo hi"), turn("blue it is"),
                                      approval={"tools": ["shell"]}),
        task_queue=worker)
    await wait_for(lambda: _waiting(temporal_client, handle.id), what="the call to wait")
    code, out, err = await cli(temporal_address, worker, "message", handle.id, MESSAGE)
    assert code == 0 and "message queued for step 2" in out, err
    await tether.approve(temporal_client, handle.id, "1-0")
    assert (await handle.result()).status == "completed"
    return handle.id


async def _waiting(client: Client, run_id: str) -> bool:
    return bool((await tether.get_status(client, run_id)).pending_approvals)


async def test_the_transcript_shows_a_persons_message_at_the_step_that_read_it(
    temporal_client: Client, temporal_address: str, worker: str
):
    run_id = await run_with_a_message(temporal_client, temporal_address, worker)
    code, out, err = await cli(temporal_address, worker, "transcript", run_id, "--json")
    assert code == 0, err
    steps = json.loads(out)
    assert [s.get("messages") for s in steps] == [None, [MESSAGE]]  # absent when none
    code, out, err = await cli(temporal_address, worker, "transcript", run_id)
    assert code == 0, err
    step_2 = out[out.index("step 2"):]
    assert f"message from a person: {MESSAGE}" in step_2 and "blue it is" in step_2
    assert "message from a person" not in out[:out.index("step 2")]


async def test_watch_shows_a_persons_message_as_the_step_that_reads_it_starts(
    temporal_client: Client, temporal_address: str, worker: str
):
    run_id = await run_with_a_message(temporal_client, temporal_address, worker)
    code, out, err = await cli(temporal_address, worker, "watch", run_id, "--json")
    assert code == 0, err
    started = [e for e in map(json.loads, out.splitlines()) if e["kind"] == "step_started"]
    assert [(e["step"], e.get("messages")) for e in started] == [(1, None), (2, [MESSAGE])]
    code, out, err = await cli(temporal_address, worker, "watch", run_id)
    assert code == 0, err
    assert out.index("step 2") < out.index(f"message from a person: {MESSAGE}") < out.index("blue it is")


async def test_a_watch_that_began_before_the_message_shows_it(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("paint", turn("checking", shell="echo hi"), turn("blue it is"),
                                      approval={"tools": ["shell"]}),
        task_queue=worker)
    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "watch", handle.id, "--json", cwd=ROOT,
        env={**os.environ, "TETHER_TASK_QUEUE": worker, "TEMPORAL_ADDRESS": temporal_address},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await wait_for(lambda: _waiting(temporal_client, handle.id), what="the call to wait")
    await tether.send_message(temporal_client, handle.id, MESSAGE)
    await tether.approve(temporal_client, handle.id, "1-0")
    out, err = await asyncio.wait_for(watcher.communicate(), 60)
    assert watcher.returncode == 0, err.decode()
    started = [e for e in map(json.loads, out.decode().splitlines()) if e["kind"] == "step_started"]
    assert [e.get("messages") for e in started if e["step"] == 2] == [[MESSAGE]]
