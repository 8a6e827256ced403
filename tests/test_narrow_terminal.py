"""At 80 columns, what a person copies from the CLI stays whole: `tether list` never wraps or
cuts a run id (other columns give way), and `tether status` never breaks its title mid-word."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from tether import client as tether

from tests.helpers import tether_cli
from tests.scripts import scripted_run, turn

NARROW = {"COLUMNS": "80"}


async def finished_run(temporal_client: Client, worker: str, workflow_id: str) -> None:
    handle = await tether.start_run(temporal_client, scripted_run("narrow", turn("done")),
                                    workflow_id=workflow_id, task_queue=worker)
    assert (await handle.result()).status == "completed"


async def test_tether_list_at_80_columns_shows_every_run_id_whole_on_one_line(
    temporal_client: Client, temporal_address: str, worker: str
):
    marker = uuid.uuid4().hex[:12]
    ids = [f"run-{marker}", f"a-longer-id-someone-chose-for-their-run-{marker}"]
    for workflow_id in ids:
        await finished_run(temporal_client, worker, workflow_id)
    code, out, err = await tether_cli(temporal_address, worker, "list", "--limit", "20", **NARROW)
    assert code == 0, err
    lines = out.splitlines()
    for workflow_id in ids:
        assert any(workflow_id in line for line in lines), out
    assert any("completed" in line for line in lines), out  # a state is one word too


async def test_tether_list_keeps_an_id_longer_than_the_terminal_whole(
    temporal_client: Client, temporal_address: str, worker: str
):
    workflow_id = f"an-id-longer-than-the-terminal-is-wide-{'x' * 40}-{uuid.uuid4().hex[:8]}"
    await finished_run(temporal_client, worker, workflow_id)
    code, out, err = await tether_cli(temporal_address, worker, "list", "--limit", "10", **NARROW)
    assert code == 0, err
    assert any(workflow_id in line for line in out.splitlines()), out


async def test_tether_status_at_80_columns_keeps_its_title_on_one_line(
    temporal_client: Client, temporal_address: str, worker: str
):
    workflow_id = f"run-{uuid.uuid4().hex[:12]}"
    await finished_run(temporal_client, worker, workflow_id)
    code, out, err = await tether_cli(temporal_address, worker, "status", workflow_id, **NARROW)
    assert code == 0, err
    assert any(f"{workflow_id} · completed · step 1" in line for line in out.splitlines()), out
