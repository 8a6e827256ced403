"""The floor under any workflow task on this server: a workflow that does nothing but call a
no-op activity `TURNS` times, on the same dev server, SDK and machine as tether's run.

Its workflow tasks hold no state, no upserts, no store and no tool: what they take (from
WorkflowTaskStarted to WorkflowTaskCompleted) is the SDK's and the server's own share of
every task, which no workflow's code can go below.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

TURNS = 30


@activity.defn(name="floor_noop")
async def noop(turn: int) -> int:
    return turn


@workflow.defn(name="FloorWorkflow")
class FloorWorkflow:
    @workflow.run
    async def run(self) -> int:
        for turn in range(TURNS):
            await workflow.execute_activity(noop, turn, start_to_close_timeout=timedelta(seconds=30))
        return TURNS
