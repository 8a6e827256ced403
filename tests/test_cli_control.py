"""Steering a live run from the `tether` CLI: status, approve, message, extend, cancel."""

from __future__ import annotations

import json

from temporalio.client import Client
from tether import client as tether

from tests.helpers import tether_cli, wait_for
from tests.scripts import scripted_run, turn

cli = tether_cli


async def test_a_person_approves_a_waiting_call_from_the_cli(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("approve", turn(shell="echo approved-and-ran"), turn("{{last_output}}"),
                     approval={"tools": ["shell"]}),
        task_queue=worker)

    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, handle.id)).pending_approvals)

    await wait_for(waiting, what="the call to wait for approval")
    code, out, err = await cli(temporal_address, worker, "status", handle.id, "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["state"] == "awaiting_approval"
    [pending] = status["pending_approvals"]
    assert pending["tool"] == "shell" and pending["arguments"] == {"command": "echo approved-and-ran"}

    code, out, err = await cli(temporal_address, worker, "approve", handle.id, pending["call_id"])
    assert code == 0, err
    assert "approved" in out
    result = await handle.result()
    assert result.output == "approved-and-ran"

    code, out, err = await cli(temporal_address, worker, "transcript", handle.id, "--json")
    assert code == 0, err
    steps = json.loads(out)
    assert steps[0]["tool_results"][0]["stdout"] == "approved-and-ran\n"


async def test_an_update_the_run_refuses_is_a_clear_cli_error(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("wait", turn(shell="sleep 30"), turn("done")),
        task_queue=worker)
    await wait_for(lambda: tether.get_status(temporal_client, handle.id), what="the run to start")
    code, _, err = await cli(temporal_address, worker, "approve", handle.id, "no-such-call")
    assert code == 2
    assert "approve refused" in err and "no call 'no-such-call'" in err
    code, out, err = await cli(temporal_address, worker, "cancel", handle.id, "--reason", "done here")
    assert code == 0, err
    assert "cancelling" in out
    assert (await handle.result()).status == "cancelled"
