"""The floor under a tether turn's workflow task on this server: a workflow that does nothing
but issue, `TURNS` times, the commands a tether turn issues: a no-op local activity (where
tether runs the tool call) and then a no-op activity (where tether calls the model), on the
same dev server, SDK and machine as tether's run.

Its workflow tasks hold no state, no upserts, no store and no tool, but the same two
activations and the same local activity's trip through the SDK as tether's: what they take
(from WorkflowTaskStarted to WorkflowTaskCompleted) is the SDK's and the server's own share
of such a task, which no workflow's code can go below.
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
            await workflow.execute_local_activity(noop, turn, start_to_close_timeout=timedelta(seconds=30))
            await workflow.execute_activity(noop, turn, start_to_close_timeout=timedelta(seconds=30))
        return TURNS
