"""What a budget account adds to a turn: a run charged to one against the same run charged
to none, on the same dev server and worker, taking turns `REPEATS` times.

Each turn of a run with an account reserves on the account before its model call and
commits after it: two more local activities, each an update to the account's workflow. A
turn's time is read from the run's own history, from one model call's scheduling to the
next's (the commit of one and the reservation of the next between them); the first turn,
which makes the sandbox, is left out.
"""

from __future__ import annotations

import statistics
import uuid
from typing import Any

from tether import client as tether
from tether.contracts.activities import MODEL_CALL

from bench.local_stack import Stack, local_stack
from bench.report import Report
from bench.turn_times import turn_seconds

TURNS = 20
REPEATS = 5
AT_MOST = 2.0
"""What an account adds to a turn, at most this many times a whole turn without one: its two
updates are two round trips through the server (each also a workflow task of the account's),
where the turn makes about one (the model call; the tool runs inside the workflow task)."""


def script() -> dict[str, Any]:
    shell = {"name": "shell", "arguments": {"command": "true"}}
    usage = {"input_tokens": 600, "output_tokens": 60}
    turns = [{"tool_calls": [shell], "usage": usage} for _ in range(TURNS - 1)]
    return {"turns": [*turns, {"text": "done", "usage": usage}]}


async def turn_ms(stack: Stack, account: str | None) -> list[float]:
    budget: dict[str, Any] = {"max_steps": TURNS + 1}
    if account is not None:
        budget["account"] = account
    handle = await tether.start_run(stack.client, {
        "task": "bench", "model": {"provider": "scripted", "script": script()},
        "tools": ["shell"], "budget": budget}, task_queue=stack.task_queue,
        workflow_id=f"bench-accounts-{uuid.uuid4().hex[:8]}")
    result = await handle.result()
    assert result.status == "completed", result.stop_reason
    events = (await handle.fetch_history()).events
    return [s * 1000 for s in turn_seconds(events, lambda name: name == MODEL_CALL)[1:]]


async def run(report: Report) -> None:
    async with local_stack("accounts") as stack:
        account = f"bench-{uuid.uuid4().hex[:6]}"
        await tether.set_account(stack.client, account, max_tokens=10**12,
                                 task_queue=stack.task_queue)
        plain: list[float] = []
        charged: list[float] = []
        for _ in range(REPEATS):
            plain += await turn_ms(stack, None)
            charged += await turn_ms(stack, account)
        used = await tether.account_status(stack.client, account)
    assert used.calls == REPEATS * TURNS, f"{used.calls} calls charged"
    report.figure("turn charged to a budget account (p50)", statistics.median(charged), "ms")
    report.figure("what the account adds to a turn (p50s' difference)",
                  statistics.median(charged) - statistics.median(plain), "ms",
                  baseline_name="a whole turn without one", baseline=statistics.median(plain),
                  at_most=AT_MOST)
