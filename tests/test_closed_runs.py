"""A run that has ended says how and why wherever a person looks: `tether status` (its state,
its last error, seconds that stopped counting), `tether list` and the `TetherStatus` search
attribute. Also a run refused at its start, and one ended from Temporal, not by itself."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from tether import client as tether
from tether.contracts import names
from tether.workflows.agent import AgentRun
from tether.workflows.visibility import STATUS

from tests.helpers import tether_cli, wait_for
from tests.scripts import scripted_run, turn

cli = tether_cli


async def status_json(temporal_address: str, worker: str, run_id: str) -> dict[str, Any]:
    code, out, err = await cli(temporal_address, worker, "status", run_id, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


async def listed_state(temporal_address: str, worker: str, run_id: str) -> str | None:
    code, out, err = await cli(temporal_address, worker, "list", "--json")
    assert code == 0, err
    return next((r["state"] for r in json.loads(out) if r["workflow_id"] == run_id), None)


@pytest.mark.parametrize(("flags", "reason"), [
    (["--tool", "no_such_tool", "--model", "scripted:examples/demo.json"], "no_such_tool"),
    (["--model", "openai:gpt-4o-mini", "--endpoint", "nowhere"], "nowhere"),
])
async def test_a_run_refused_at_start_shows_failed_and_why_in_status_list_and_search_attribute(
    temporal_client: Client, temporal_address: str, worker: str, flags: list[str], reason: str
):
    run_id = f"refused-{uuid.uuid4().hex[:8]}"
    code, _, err = await cli(temporal_address, worker, "run", "refuse me", "--id", run_id, *flags)
    assert code == 0, err
    with pytest.raises(WorkflowFailureError):
        await tether.get_run(temporal_client, run_id).result()

    first = await status_json(temporal_address, worker, run_id)
    assert first["state"] == "failed"
    assert reason in (first["last_error"] or "")
    await asyncio.sleep(1.2)
    assert (await status_json(temporal_address, worker, run_id))["budget"]["seconds"] == \
        first["budget"]["seconds"]  # an ended run's clock has stopped
    code, out, err = await cli(temporal_address, worker, "status", run_id)
    assert code == 0, err
    assert f"{run_id} · failed" in out and "last error:" in out and reason in out

    # Its history replays: a worker that did not hold it in its cache answers queries by
    # replaying it, and an upgraded one resumes runs so.
    history = await tether.get_run(temporal_client, run_id).fetch_history()
    replayed = await Replayer(workflows=[AgentRun], data_converter=pydantic_data_converter
                              ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None

    described = await tether.get_run(temporal_client, run_id).describe()
    assert described.typed_search_attributes.get(STATUS) == "failed"
    await wait_for(lambda: _is(listed_state(temporal_address, worker, run_id), "failed"),
                   what="tether list to show the run as failed")


async def _is(value: Any, wanted: str) -> bool:
    return await value == wanted


async def test_a_run_terminated_from_temporal_shows_failed_and_the_reason_not_its_last_phase(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("wait", turn(shell="echo hi"), turn("done"),
                                      approval={"tools": ["shell"]}), task_queue=worker)
    await wait_for(lambda: _is(_state(temporal_client, handle.id), "awaiting_approval"),
                   what="the run to wait for approval")
    await handle.terminate(reason="an operator stopped it")

    first = await status_json(temporal_address, worker, handle.id)
    assert first["state"] == "failed"
    assert "terminated" in first["last_error"] and "an operator stopped it" in first["last_error"]
    assert first["pending_approvals"] == []
    await asyncio.sleep(1.2)
    assert (await status_json(temporal_address, worker, handle.id))["budget"]["seconds"] == \
        first["budget"]["seconds"]
    await wait_for(lambda: _is(listed_state(temporal_address, worker, handle.id), "terminated"),
                   what="tether list to show the run as terminated")


async def _state(client: Client, run_id: str) -> str:
    return (await tether.get_status(client, run_id)).state


async def test_a_run_whose_input_was_invalid_shows_failed_and_why_in_status(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await temporal_client.start_workflow(
        names.AGENT_RUN, {"task": 42}, id=f"invalid-{uuid.uuid4().hex[:8]}", task_queue=worker)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    status = await status_json(temporal_address, worker, handle.id)
    assert status["state"] == "failed"
    assert "invalid AgentRun input" in status["last_error"] and "task" in status["last_error"]
    code, out, err = await cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    assert f"{handle.id} · failed" in out and "invalid AgentRun input" in out
