"""A command that talks to a run no worker serves answers within seconds, saying what it
waited for and whether what it asked is recorded, instead of hanging: Temporal holds an
update until a worker takes it. Each runs `tether` as a person would."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from tether import client as tether

from tests.helpers import tether_cli
from tests.scripts import scripted_run, turn

ASKS = [
    (["cancel"], "the cancel"),
    (["approve", "1-0"], "the approval"),
    (["approve", "1-0", "--deny"], "the approval"),
    (["message", "use the blue one"], "the message"),
    (["extend", "--steps", "5"], "the budget extension"),
]


async def unserved_run(temporal_client: Client, queue: str) -> str:
    handle = await tether.start_run(temporal_client, scripted_run("wait", turn("done")),
                                    task_queue=queue)
    return handle.id


async def ask(temporal_address: str, queue: str, command: list[str], run_id: str) -> tuple[int, str]:
    code, _, err = await asyncio.wait_for(
        tether_cli(temporal_address, queue, command[0], run_id, *command[1:]), 60)
    return code, err


@pytest.mark.parametrize(("command", "what"), ASKS)
async def test_a_command_to_a_run_whose_queue_no_worker_polls_says_so_and_sends_nothing(
    temporal_client: Client, temporal_address: str, command: list[str], what: str
):
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    run_id = await unserved_run(temporal_client, queue)
    code, err = await ask(temporal_address, queue, command, run_id)
    assert code == 2, err
    assert "Traceback" not in err
    [line, hint] = err.strip().splitlines()
    assert f"no worker is serving task queue '{queue}'" in line, err
    assert f"{what} for run {run_id} was not sent" in line, err
    assert "tether worker" in hint and "tether dev" in hint, err
    description = await tether.get_run(temporal_client, run_id).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    await tether.get_run(temporal_client, run_id).terminate("test done")


@workflow.defn(name="Idle")
class Idle:
    @workflow.run
    async def run(self) -> None:
        pass


async def test_a_cancel_no_worker_takes_in_time_says_what_it_waited_for(
    temporal_client: Client, temporal_address: str
):
    # A worker that polled the queue and stopped stays listed among its pollers for minutes:
    # the command sends the cancel, and no one takes it.
    queue = f"stopped-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_client, task_queue=queue, workflows=[Idle],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        await asyncio.sleep(1)
    run_id = await unserved_run(temporal_client, queue)
    code, err = await ask(temporal_address, queue, ["cancel"], run_id)
    assert code == 2, err
    assert "Traceback" not in err
    [line, hint] = err.strip().splitlines()
    assert f"no worker on task queue '{queue}' took the cancel for run {run_id}" in line, err
    assert "not recorded" in line and f"tether status {run_id}" in line, err
    assert "tether worker" in hint, err
    await tether.get_run(temporal_client, run_id).terminate("test done")
