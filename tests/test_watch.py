"""Watching a run live: `tether.watch`'s typed events, and `tether watch` / `run --follow`."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from tether import client as tether
from tether.contracts.digests import arguments_digest
from tether.contracts.events import RunEvent

from tests.endpoints import wire_server
from tests.helpers import ROOT, tether_cli, wait_for
from tests.llm.test_agent_runs_on_providers import openai_chunks
from tests.llm.wire_servers import OPENAI_KEY
from tests.scripts import scripted_run, turn


async def collect(client: Client, workflow_id: str, **kwargs: Any) -> list[RunEvent]:
    return [event async for event in tether.watch(client, workflow_id, **kwargs)]


def numbered(events: list[RunEvent]) -> list[RunEvent]:
    return [event for event in events if event.offset is not None]


cli = tether_cli


THREE_STEPS = (
    turn("looking around", shell="echo one", python="print(2)"),
    turn(shell="sleep 1; echo three"),
    turn("done: {{last_output}}"),
)


async def test_two_watchers_see_the_same_numbered_story_and_a_resumed_watch_gets_exactly_the_rest(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, scripted_run("watch me", *THREE_STEPS),
                                    task_queue=worker)
    first, second = await asyncio.gather(collect(temporal_client, handle.id),
                                         collect(temporal_client, handle.id))
    story = numbered(first)
    assert [e.offset for e in story] == list(range(len(story)))
    assert [e.kind for e in story] == [
        "step_started", "tool_call_started", "tool_call_started",
        "tool_call_finished", "tool_call_finished", "step_finished",
        "step_started", "tool_call_started", "tool_call_finished", "step_finished",
        "step_started", "step_finished", "finished"]
    started = story[1]
    assert started.kind == "tool_call_started"
    assert (started.call_id, started.tool, started.arguments) == ("1-0", "shell", {"command": "echo one"})
    finished_calls = [e for e in story if e.kind == "tool_call_finished"]
    assert [e.result.stdout for e in finished_calls if e.result] == ["one\n", "2\n", "three\n"]
    assert story[5].kind == "step_finished" and story[5].text == "looking around"
    end = story[-1]
    assert end.kind == "finished" and end.result is not None
    assert end.result.output == "done: three" and end.status == "completed"
    # Two watchers at once, and one after the end, number every fact alike.
    assert [e.model_dump() for e in numbered(second)] == [e.model_dump() for e in story]
    again = numbered(await collect(temporal_client, handle.id))
    assert [e.model_dump() for e in again] == [e.model_dump() for e in story]
    for after in (0, 5, 9, len(story) - 2):
        resumed = numbered(await collect(temporal_client, handle.id, after=after))
        assert [e.model_dump() for e in resumed] == [e.model_dump() for e in story[after + 1:]]


async def test_watching_adds_nothing_to_the_run_history(temporal_client: Client, worker: str):
    async def history(watchers: int) -> list[str]:
        """The run's events but its workflow tasks, which come and go with the timing of
        concurrent tool calls, watched or not."""
        handle = await tether.start_run(temporal_client, scripted_run("same", *THREE_STEPS),
                                        task_queue=worker)
        await asyncio.gather(*(collect(temporal_client, handle.id) for _ in range(watchers)),
                             handle.result())
        return [EventType.Name(event.event_type) for event in (await handle.fetch_history()).events
                if "WORKFLOW_TASK" not in EventType.Name(event.event_type)]

    unwatched, watched = await asyncio.gather(history(0), history(3))
    assert watched == unwatched


async def test_a_watcher_is_told_of_a_waiting_call_with_its_command_and_of_the_budget(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("approve", turn(shell="echo approved-and-ran"), turn("{{last_output}}"),
                     approval={"tools": ["shell"]}, budget={"max_steps": 5}),
        task_queue=worker)
    seen: list[RunEvent] = []
    async for event in tether.watch(temporal_client, handle.id):
        seen.append(event)
        if event.kind == "approval_needed":
            await asyncio.sleep(1.5)  # a person takes a while: the watcher keeps waiting
            await tether.approve(temporal_client, handle.id, event.call_id)
    kinds = [e.kind for e in seen]
    [waiting] = [e for e in seen if e.kind == "approval_needed"]
    assert waiting.tool == "shell" and waiting.arguments == {"command": "echo approved-and-ran"}
    digest = arguments_digest({"command": "echo approved-and-ran"})
    assert waiting.approve_command == f"tether approve {handle.id} 1-0 --digest {digest}"
    assert kinds.index("tool_call_started") < kinds.index("approval_needed") < kinds.index(
        "tool_call_finished")
    budgets = [e for e in seen if e.kind == "budget"]
    assert budgets and all(b.budget.max_steps == 5 for b in budgets)
    assert "awaiting_approval" in {b.state for b in budgets}
    assert seen[-1].kind == "finished" and seen[-1].result is not None
    assert seen[-1].result.output == "approved-and-ran"


async def test_the_models_text_arrives_as_deltas_while_it_streams(
    temporal_client: Client, worker: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    server = wire_server("openai")
    server.reset(OPENAI_KEY)
    release = threading.Event()
    try:
        server.reply_stream(openai_chunks("Thinking out loud for a long while... 42."),
                            hold=release, hold_after=3)
        handle = await tether.start_run(
            temporal_client,
            {"task": "think", "model": {"provider": "openai", "name": "gpt-4o-mini",
                                        "endpoint": "wire-openai"}},
            task_queue=worker)
        seen: list[RunEvent] = []

        async def watch() -> None:
            async for event in tether.watch(temporal_client, handle.id):
                seen.append(event)

        watching = asyncio.create_task(watch())
        streamed = lambda: "".join(e.text for e in seen if e.kind == "text_delta")  # noqa: E731
        await wait_for(lambda: streamed() == "Thinking out lou", timeout=30,
                       what="the streamed text to reach the watcher")
        release.set()
        await asyncio.wait_for(watching, 60)
    finally:
        release.set()
        server.reset(OPENAI_KEY)
    [step_done] = [e for e in seen if e.kind == "step_finished"]
    assert step_done.text == "Thinking out loud for a long while... 42."
    assert seen[-1].kind == "finished"


async def test_tether_watch_in_two_terminals_and_run_follow_show_the_run_to_its_result(
    temporal_client: Client, temporal_address: str, worker: str, tmp_path: Path
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("approve", turn("checking", shell="echo approved-and-ran"),
                     turn("{{last_output}}"), approval={"tools": ["shell"]}),
        task_queue=worker)
    env = {**os.environ, "TETHER_TASK_QUEUE": worker, "TEMPORAL_ADDRESS": temporal_address,
           "COLUMNS": "200"}
    terminals = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "watch", handle.id, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) for _ in range(2)]
    shown = ["", ""]
    for i, terminal in enumerate(terminals):  # both show the waiting call before anyone answers
        assert terminal.stdout is not None
        while "  approve: " not in shown[i]:
            line = await asyncio.wait_for(terminal.stdout.readline(), 60)
            assert line, f"the watch ended early: {shown[i]}"
            shown[i] += line.decode()
    await tether.approve(temporal_client, handle.id, "1-0")
    for i, terminal in enumerate(terminals):
        rest, err = await asyncio.wait_for(terminal.communicate(), 60)
        out = shown[i] + rest.decode()
        assert terminal.returncode == 0, err
        assert "step 1 · scripted" in out
        assert "awaiting approval 1-0: shell" in out and '"echo approved-and-ran"' in out
        assert f"tether approve {handle.id} 1-0" in out
        assert "exit 0" in out and "approved-and-ran" in out
        assert "completed" in out and "steps" in out

    script = tmp_path / "multiply.json"
    script.write_text(json.dumps({"turns": [turn(python="print(6 * 7)"), turn("6 * 7 = {{last_output}}")]}))
    code, out, err = await cli(temporal_address, worker, "run", "multiply", "--model",
                               f"scripted:{script}", "--follow", "--json")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["kind"] == "finished"
    assert events[-1]["result"]["output"] == "6 * 7 = 42"
    assert [e["offset"] for e in events if e["offset"] is not None] == list(range(7))
