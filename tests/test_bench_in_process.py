"""bench/in_process.py: the baseline with no Temporal plays a run's script through the
executor, every tool call for real, and removes its sandbox. The machine's Docker engine, no
Temporal server."""

from __future__ import annotations

import uuid

from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER

from bench import in_process
from tests.helpers import providers, sandboxes


def script_input(marker: str) -> dict:
    """Three turns: two shell calls that leave a trace in the sandbox, then an answer that
    quotes the last call's output, as only a loop that ran the calls can."""
    return {"task": "count", "tools": ["shell"], "model": {"provider": "scripted", "script": {"turns": [
        {"tool_calls": [{"name": "shell", "arguments": {"command": f"echo {marker} > /workspace/n"}}]},
        {"tool_calls": [{"name": "shell", "arguments": {"command": "cat /workspace/n"}}]},
        {"text": "saw {{last_output}}"},
    ]}}}


async def play(marker: str, worker: str) -> in_process.Played:
    return await in_process.play(script_input(marker), providers=providers(), sandboxes=sandboxes(),
                                 labels={LABEL_MANAGED: "1", LABEL_WORKER: worker})


async def test_the_loop_with_no_temporal_runs_each_call_in_the_sandbox(docker_engine):
    played = await play(marker := uuid.uuid4().hex[:8], f"tests-alone-{marker}")
    assert played.answer == f"saw {marker}"


async def test_the_loop_with_no_temporal_times_each_turn_after_the_first(docker_engine):
    played = await play(marker := uuid.uuid4().hex[:8], f"tests-alone-{marker}")
    assert len(played.turns) == 2 and all(0 < t < 30 for t in played.turns)


async def test_the_loop_with_no_temporal_leaves_no_sandbox(docker_engine):
    await play(marker := uuid.uuid4().hex[:8], worker := f"tests-alone-{marker}")
    assert sandboxes().managed(**{LABEL_WORKER: worker}) == []
