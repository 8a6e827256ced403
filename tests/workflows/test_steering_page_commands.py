"""The Temporal CLI commands for steering a run (docs/steering.md) work as written."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from tether import client as tether
from tether.embedded.temporal import temporal_binary

from tests.helpers import wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, conversation

ROOT = Path(__file__).resolve().parents[2]


def page_commands() -> dict[str, str]:
    """The steering commands, keyed by query type or update name (and `deny`)."""
    page = (ROOT / "docs" / "steering.md").read_text()
    block = re.search(r"From the Temporal CLI.*?```sh\n(.*?)\n```", page, re.S)
    assert block, "docs/steering.md shows the steering commands"
    commands = {}
    for line in block.group(1).splitlines():
        name = re.search(r"--(?:name|type) (\w+)", line).group(1)
        commands["deny" if "false" in line else name] = line
    return commands


async def temporal_cli(address: str, handle: WorkflowHandle, command: str) -> str:
    argv = shlex.split(command.replace("RUN_ID", handle.id))
    assert argv[0] == "temporal"
    process = await asyncio.create_subprocess_exec(
        temporal_binary(), *argv[1:], "--address", address, "-o", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def waiting_for(client: Client, handle: WorkflowHandle, call_id: str) -> bool:
    status = await tether.get_status(client, handle.id)
    return [p.call_id for p in status.pending_approvals] == [call_id]


async def test_the_page_commands_query_message_extend_and_deny(
    temporal_client: Client, temporal_address: str, worker: str
):
    commands = page_commands()
    handle = await tether.start_run(
        temporal_client,
        scripted_run("steer", turn(shell="echo 1"), turn(python="print(2)"), turn(shell="echo 3"),
                     turn(shell="echo 4"), turn("done"),
                     approval={"tools": ["python"]}, budget={"max_steps": 3}),
        task_queue=worker)
    await wait_for(lambda: waiting_for(temporal_client, handle, "2-0"), what="the approval request")

    status = json.loads(await temporal_cli(temporal_address, handle, commands["status"]))
    assert status["queryResult"][0]["state"] == "awaiting_approval"
    await temporal_cli(temporal_address, handle, commands["send_message"])
    await temporal_cli(temporal_address, handle, commands["extend_budget"])
    await temporal_cli(temporal_address, handle, commands["deny"])

    result = await handle.result()
    assert (result.status, result.steps) == ("completed", 5)  # 3 steps + 10 more allowed
    denied = (await tether.get_transcript(temporal_client, handle.id))[1].tool_results[0]
    assert denied.stderr == "a person denied this call: not on prod"
    said = [m.content for m in conversation(await activities(temporal_client, handle))
            if m.role == "user"]
    assert said[-1] == "Use the staging database."


async def test_the_page_commands_approve_and_cancel(
    temporal_client: Client, temporal_address: str, worker: str
):
    commands = page_commands()
    handle = await tether.start_run(
        temporal_client,
        scripted_run("steer", turn(shell="echo 1"), turn(python="print(2)"),
                     turn(shell="sleep 600"), turn("never"), approval={"tools": ["python"]}),
        task_queue=worker)
    await wait_for(lambda: waiting_for(temporal_client, handle, "2-0"), what="the approval request")
    await temporal_cli(temporal_address, handle, commands["approve"])

    async def running_step_3() -> bool:
        status = await tether.get_status(temporal_client, handle.id)
        return (status.step, status.state) == (3, "running_tools")

    await wait_for(running_step_3, what="step 3's tool call")
    await temporal_cli(temporal_address, handle, commands["cancel"])
    result = await handle.result()
    assert (result.status, result.stop_reason) == ("cancelled", "cancelled: enough")
    approved = (await tether.get_transcript(temporal_client, handle.id))[1].tool_results[0]
    assert (approved.exit_code, approved.stdout) == (0, "2\n")
