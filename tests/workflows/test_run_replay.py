"""Recorded histories of the main paths replay against today's workflow code without
non-determinism errors: what lets a worker resume any run after a crash or a deploy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from tether import client as tether
from tether.contracts import names

from tests.helpers import wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import assert_replays, executions

Steer = Callable[[Client, WorkflowHandle], Awaitable[None]]


async def _in_state(client: Client, handle: WorkflowHandle, state: str) -> None:
    async def reached() -> bool:
        return (await tether.get_status(client, handle.id)).state == state
    await wait_for(reached, what=state)


async def cancel_mid_tool(client: Client, handle: WorkflowHandle) -> None:
    await _in_state(client, handle, "running_tools")
    await handle.execute_update(names.UPDATE_CANCEL, "enough")


async def approve_then_deny(client: Client, handle: WorkflowHandle) -> None:
    await _in_state(client, handle, "awaiting_approval")
    await handle.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
    await wait_for(lambda: _waiting(client, handle, "2-0"), what="the second approval")
    await handle.execute_update(names.UPDATE_APPROVE, args=["2-0", False, "no"])


async def _waiting(client: Client, handle: WorkflowHandle, call_id: str) -> bool:
    status = await tether.get_status(client, handle.id)
    return [p.call_id for p in status.pending_approvals] == [call_id]


async def message_and_extend(client: Client, handle: WorkflowHandle) -> None:
    await _in_state(client, handle, "running_tools")
    await handle.execute_update(names.UPDATE_SEND_MESSAGE, "keep going")
    await handle.execute_update(names.UPDATE_EXTEND_BUDGET, {"max_steps": 1, "max_seconds": 60})


async def temporal_cancel(client: Client, handle: WorkflowHandle) -> None:
    await _in_state(client, handle, "running_tools")
    await handle.cancel()


PATHS: dict[str, tuple[dict, Steer | None, str]] = {
    "completed": (scripted_run("done", turn(shell="echo hi"), turn("{{last_output}}")),
                  None, "completed"),
    "budget_exhausted": (scripted_run("steps", turn(shell="echo 1"), turn(shell="echo 2"),
                                      turn("summary"),
                                      budget={"max_steps": 2, "on_exhausted": "final_answer"}),
                         None, "budget_exhausted"),
    "deadline": (scripted_run("slow", turn(shell="sleep 600"), turn("never"),
                              budget={"max_seconds": 4}), None, "budget_exhausted"),
    "cancelled": (scripted_run("wait", turn(shell="sleep 600"), turn("never")),
                  cancel_mid_tool, "cancelled"),
    "approval": (scripted_run("guarded", turn(shell="echo a"), turn(shell="echo b"), turn("ok"),
                              approval={"tools": ["shell"]}), approve_then_deny, "completed"),
    "message_and_extend": (scripted_run("steer", turn(shell="sleep 5"), turn(shell="echo"),
                                        turn("ok"), budget={"max_steps": 2}),
                           message_and_extend, "completed"),
    "continue_as_new": (scripted_run("long", *[turn(shell=f"echo {n}") for n in range(5)],
                                     turn("ok"), continue_as_new_after_steps=2),
                        None, "completed"),
    "temporal_cancel": (scripted_run("wait", turn(shell="sleep 600"), turn("never")),
                        temporal_cancel, "workflow cancelled"),
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_the_history_of_a_run_replays_without_nondeterminism(
    temporal_client: Client, worker: str, path: str
):
    run, steer, ending = PATHS[path]
    handle = await tether.start_run(temporal_client, run, task_queue=worker)
    if steer is not None:
        await steer(temporal_client, handle)
    if ending == "workflow cancelled":
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    else:
        assert (await handle.result()).status == ending
    if path == "continue_as_new":
        assert len(await executions(temporal_client, handle)) == 3
    await assert_replays(temporal_client, handle)
