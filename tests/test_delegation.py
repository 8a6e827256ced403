"""Sub-agents through a real worker: a parent's scripted model calls `delegate`, each call
is a child `AgentRun` with its own scripted model and sandbox, and its answer, or why it
stopped, is the parent's tool result."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from tether import client as tether

from tests.helpers import ROOT, history_text, sandboxes, sandboxes_of, tether_cli, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import assert_replays
from tests.workflows.worker_process import WorkerProcess

AGENTS = {"max_depth": 2, "max_children": 4}


def delegate(task: str, *turns: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A `delegate` call whose sub-agent is the scripted model playing `turns`."""
    return {"name": "delegate", "arguments": {
        "task": task, "model": {"provider": "scripted", "script": {"turns": list(turns)}}, **more}}


def calls(*tool_calls: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    return {"text": text, "tool_calls": list(tool_calls)}


async def children_of(client: Client, parent_id: str) -> list[Any]:
    return [execution async for execution in client.list_workflows(f"ParentWorkflowId = '{parent_id}'")]


def results_of(result_step: Any) -> list[dict[str, Any]]:
    return [r.model_dump() for r in result_step.tool_results]


async def test_two_delegations_run_at_once_and_their_answers_are_the_tool_results(
    temporal_client: Client, worker: str
):
    slow = {"text": "{{last_output}}", "tool_calls": [], "delay_seconds": 1.5}
    run = scripted_run(
        "plan", calls(delegate("count", turn(shell="echo one"), slow),
                      delegate("spell", turn(shell="echo two"), slow)),
        turn("both answered"), agents=AGENTS)
    handle = await tether.start_run(temporal_client, run, task_queue=worker)
    result = await handle.result()

    assert result.status == "completed", result.stop_reason
    transcript = await tether.get_transcript(temporal_client, handle.id)
    assert [(r.exit_code, r.stdout) for r in transcript[0].tool_results] == [(0, "one"), (0, "two")]
    children = await children_of(temporal_client, handle.id)
    assert sorted(c.id for c in children) == [f"{handle.id}.delegate-1-0", f"{handle.id}.delegate-1-1"]
    first, second = children
    # They overlap in time: neither closed before the other started.
    assert first.start_time < second.close_time and second.start_time < first.close_time
    # One line per child in the parent's transcript; their usage is the parent's too.
    assert transcript[0].note is not None and transcript[0].note.count("delegate: ") == 2
    child_tokens = 0
    for child in children:
        child_result = await temporal_client.get_workflow_handle(child.id).result()
        child_tokens += child_result["usage"]["input_tokens"] + child_result["usage"]["output_tokens"]
    own = sum(step.usage.total_tokens for step in transcript)
    assert result.usage.total_tokens == own + child_tokens


async def test_a_child_stopped_by_its_carved_budget_gives_its_stop_reason_as_the_tool_result(
    temporal_client: Client, worker: str
):
    # The parent has 5 steps; at its first it has 4 left, so the child asking for 10 gets 4,
    # and the 4 it takes leave the parent none.
    loop = [turn(shell="echo again") for _ in range(6)]
    run = scripted_run("plan", calls(delegate("loop", *loop, turn("never"), budget={"max_steps": 10})),
                       turn("unreachable"), agents=AGENTS, budget={"max_steps": 5})
    handle = await tether.start_run(temporal_client, run, task_queue=worker)
    result = await handle.result()

    child = await temporal_client.get_workflow_handle(f"{handle.id}.delegate-1-0").result()
    assert child["status"] == "budget_exhausted"
    assert child["stop_reason"] == "max_steps reached: 4 of 4 steps used"
    [step] = await tether.get_transcript(temporal_client, handle.id)
    [tool_result] = step.tool_results
    assert tool_result.exit_code == 1
    assert "budget_exhausted: max_steps reached: 4 of 4 steps used" in tool_result.stderr
    assert (result.status, result.stop_reason) == ("budget_exhausted", "max_steps reached: 5 of 5 steps used")


async def test_nesting_at_max_depth_is_refused_as_a_tool_error_one_level_deeper(
    temporal_client: Client, worker: str
):
    too_deep = delegate("deeper still", turn("never runs"))
    grandchild = delegate("deepest", calls(too_deep), turn("refused, so I answer myself"))
    child = delegate("deeper", calls(grandchild), turn("{{last_output}}"))
    handle = await tether.start_run(
        temporal_client, scripted_run("nest", calls(child), turn("{{last_output}}"), agents=AGENTS),
        task_queue=worker)
    result = await handle.result()

    assert (result.status, result.output) == ("completed", "refused, so I answer myself")
    # Each of the three runs took two steps: the grandchild's are charged to the root too.
    assert (result.steps, result.delegated_steps) == (2, 4)
    assert (await tether.get_status(temporal_client, handle.id)).budget.steps == 6
    deepest_id = f"{handle.id}.delegate-1-0.delegate-1-0"
    step, _ = await tether.get_transcript(temporal_client, deepest_id)
    [refused] = step.tool_results
    assert refused.exit_code == 126
    assert "depth 2 of max_depth 2: it may not delegate further" in refused.stderr
    assert await children_of(temporal_client, deepest_id) == []


async def test_a_run_without_agents_has_no_delegate_tool(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client, scripted_run("alone", calls(delegate("help", turn("hi"))), turn("done")),
        task_queue=worker)
    await handle.result()
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert "unknown tool 'delegate'" in step.tool_results[0].stderr
    assert await children_of(temporal_client, handle.id) == []


async def test_a_child_may_not_widen_what_the_parent_may_do(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client, scripted_run(
            "plan", calls(delegate("net", turn("x"), tools=["python", "shell"]),
                          delegate("net", turn("x"), sandbox={"memory_mb": 4096})),
            turn("done"), agents=AGENTS, tools=["python"]),
        task_queue=worker)
    await handle.result()
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert [r.exit_code for r in step.tool_results] == [126, 126]
    assert "only this run's tools (python), not shell" in step.tool_results[0].stderr
    assert "memory_mb would widen it" in step.tool_results[1].stderr
    assert await children_of(temporal_client, handle.id) == []


async def start_with_a_child_waiting(temporal_client: Client, worker: str, **more: Any) -> tuple[Any, str]:
    """A parent holding a sandbox whose child, holding one too, waits for approval of 2-0."""
    child = delegate("check", turn(shell="echo child"), turn(python="print('approved')"),
                     turn("{{last_output}}"), approval={"tools": ["python"]})
    run = scripted_run("plan", turn(shell="echo parent"), calls(child), turn("{{last_output}}"),
                       agents=AGENTS, **more)
    handle = await tether.start_run(temporal_client, run, task_queue=worker)
    child_id = f"{handle.id}.delegate-2-0"

    async def child_waits() -> bool:
        return bool((await tether.get_status(temporal_client, handle.id)).children_waiting)

    await wait_for(child_waits, timeout=60, what="the child's call to wait for approval")
    return handle, child_id


async def test_a_childs_waiting_call_shows_in_the_parents_status_and_is_answered_on_the_child(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle, child_id = await start_with_a_child_waiting(temporal_client, worker)
    status = await tether.get_status(temporal_client, handle.id)
    [waiting] = status.children_waiting
    assert (waiting.workflow_id, waiting.call_id, waiting.tool) == (child_id, "2-0", "python")
    assert status.state == "awaiting_approval"

    code, out, err = await tether_cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    assert f"tether approve {child_id} 2-0 --digest sha256:" in out

    code, out, err = await tether_cli(temporal_address, worker, "approve", child_id, "2-0")
    assert code == 0, err
    result = await handle.result()
    assert (result.status, result.output) == ("completed", "approved")
    assert (await tether.get_status(temporal_client, handle.id)).children_waiting == []


async def test_watch_shows_a_childs_waiting_call_with_the_command_that_answers_it(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle, child_id = await start_with_a_child_waiting(temporal_client, worker)
    events = []
    async for event in tether.watch(temporal_client, handle.id):
        events.append(event)
        if event.kind == "approval_needed":
            break
    [needed] = [e for e in events if e.kind == "approval_needed"]
    assert needed.workflow_id == child_id
    assert needed.approve_command.startswith(f"tether approve {child_id} 2-0")

    watch = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "watch", handle.id, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "TETHER_TASK_QUEUE": worker, "TEMPORAL_ADDRESS": temporal_address,
             "COLUMNS": "200"})
    assert watch.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(60):
        while not any("approve: tether approve" in line for line in seen):
            seen.append((await watch.stdout.readline()).decode())
        await tether.approve(temporal_client, child_id, "2-0")  # which ends the run, and the watch
        rest, _ = await watch.communicate()
    assert watch.returncode == 0
    out = "".join(seen) + rest.decode()
    assert f"sub-agent {child_id} awaits approval of 2-0: python" in out
    assert f"approve: tether approve {child_id} 2-0 --digest sha256:" in out


@pytest.mark.parametrize("how", ["tether", "temporal", "budget"])
async def test_cancelling_a_parent_whose_child_waits_for_approval_removes_both_sandboxes(
    temporal_client: Client, worker: str, how: str
):
    deadline = 15
    handle, child_id = await start_with_a_child_waiting(
        temporal_client, worker, **({"budget": {"max_seconds": deadline}} if how == "budget" else {}))
    assert sandboxes_of(handle.id) and sandboxes_of(child_id)

    if how == "tether":
        await tether.cancel(temporal_client, handle.id, "enough")
    elif how == "temporal":
        await handle.cancel()
    await wait_for(lambda: not sandboxes_of(handle.id) and not sandboxes_of(child_id),
                   timeout=30 + (deadline if how == "budget" else 0),
                   what="the parent's and the child's sandboxes to be removed")
    child = await temporal_client.get_workflow_handle(child_id).describe()
    assert child.status != WorkflowExecutionStatus.RUNNING


async def test_list_tree_shows_children_under_their_parent(
    temporal_client: Client, temporal_address: str, worker: str
):
    run = scripted_run("plan", calls(delegate("a", turn("A")), delegate("b", turn("B"))), turn("done"),
                       agents=AGENTS)
    handle = await tether.start_run(temporal_client, run, task_queue=worker)
    await handle.result()

    async def listed() -> bool:
        return len(await children_of(temporal_client, handle.id)) == 2

    await wait_for(listed, what="the children in visibility")
    code, out, err = await tether_cli(temporal_address, worker, "list", "--tree", "--since", "5m")
    assert code == 0, err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(handle.id + " "))
    assert lines[at + 1].strip().startswith(f"└─ {handle.id}.delegate-1-")
    assert lines[at + 2].strip().startswith(f"└─ {handle.id}.delegate-1-")
    code, out, err = await tether_cli(temporal_address, worker, "list", "--json", "--since", "5m")
    parents = {r["workflow_id"]: r["parent_id"] for r in json.loads(out)}
    assert parents[f"{handle.id}.delegate-1-0"] == handle.id


@pytest.fixture
async def worker_process(
    temporal_client: Client, docker_engine, tmp_path: Path,
) -> AsyncIterator[list[WorkerProcess]]:
    """Worker processes of one queue and worker id, made by the test; all stopped after."""
    made: list[WorkerProcess] = []
    yield made
    for process in made:
        await process.stop()
    if made:
        leftovers = sandboxes().managed(**{"tether.worker": made[0].worker_id})
        for container in leftovers:
            sandboxes().remove(container.id)
        assert not leftovers, f"sandboxes left behind: {[c.name for c in leftovers]}"


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_worker_killed_while_children_start_leaves_each_child_started_once(
    temporal_client: Client, worker_process: list[WorkerProcess], tmp_path: Path
):
    queue, worker_id = f"delegate-{uuid.uuid4().hex[:8]}", f"delegate-{uuid.uuid4().hex[:8]}"

    def make() -> WorkerProcess:
        worker_process.append(WorkerProcess(temporal_client, task_queue=queue, worker_id=worker_id,
                                            log_file=tmp_path / "worker.log"))
        return worker_process[-1]

    first = make()
    await first.start()
    children = [delegate(f"child {n}", turn(shell=f"echo {n}"), turn("{{last_output}}")) for n in range(3)]
    handle = await tether.start_run(
        temporal_client, scripted_run("plan", calls(*children), turn("all answered"), agents=AGENTS),
        task_queue=queue)

    async def starting() -> bool:
        history = await handle.fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
                   for e in history.events)

    await wait_for(starting, timeout=60, every=0.02, what="the children to be starting")
    await first.kill()
    second = make()
    await second.start()
    result = await asyncio.wait_for(handle.result(), timeout=150)

    assert result.status == "completed", result.stop_reason
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert [r.stdout for r in step.tool_results] == ["0", "1", "2"]
    started = [c.id for c in await children_of(temporal_client, handle.id)]
    assert sorted(started) == [f"{handle.id}.delegate-1-{n}" for n in range(3)]
    history = await handle.fetch_history()
    initiated = [e for e in history.events
                 if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED]
    assert len(initiated) == 3
    await assert_replays(temporal_client, handle)


async def test_a_delegate_call_whose_child_id_already_runs_attaches_to_it_instead_of_starting_another(
    temporal_client: Client, worker: str
):
    parent_id = f"attach-{uuid.uuid4().hex[:8]}"
    child_id = f"{parent_id}.delegate-1-0"
    already = {"text": "from the run already started", "tool_calls": [], "delay_seconds": 2}
    await tether.start_run(temporal_client, scripted_run("already", already), task_queue=worker,
                           workflow_id=child_id)
    handle = await tether.start_run(
        temporal_client,
        scripted_run("plan", calls(delegate("again", turn("from a second start"))), turn("{{last_output}}"),
                     agents=AGENTS),
        task_queue=worker, workflow_id=parent_id)
    result = await handle.result()

    assert (result.status, result.output) == ("completed", "from the run already started")
    executions = [e async for e in temporal_client.list_workflows(f"WorkflowId = '{child_id}'")]
    assert len(executions) == 1


async def test_calls_past_max_children_wait_for_a_free_place(temporal_client: Client, worker: str):
    slow = {"text": "done", "tool_calls": [], "delay_seconds": 1}
    run = scripted_run("plan", calls(delegate("a", slow), delegate("b", slow)), turn("both"),
                       agents={"max_depth": 1, "max_children": 1})
    handle = await tether.start_run(temporal_client, run, task_queue=worker)
    assert (await handle.result()).status == "completed"
    first, second = sorted(await children_of(temporal_client, handle.id), key=lambda c: c.start_time)
    assert first.close_time <= second.start_time


async def test_a_child_the_worker_refuses_at_its_start_is_a_tool_error_that_costs_the_parent_nothing(
    temporal_client: Client, worker: str
):
    unknown = {"name": "delegate", "arguments": {
        "task": "x", "model": {"provider": "openai", "name": "gpt-4o", "endpoint": "nowhere"}}}
    handle = await tether.start_run(
        temporal_client, scripted_run("plan", calls(unknown), turn("on my own"), agents=AGENTS,
                                      budget={"max_steps": 5}),
        task_queue=worker)
    result = await handle.result()

    assert result.status == "completed", result.stop_reason
    step, _ = await tether.get_transcript(temporal_client, handle.id)
    [refused] = step.tool_results
    assert refused.exit_code == 1
    assert f"the sub-agent {handle.id}.delegate-1-0 failed" in refused.stderr
    assert "nowhere" in refused.stderr
    assert (await tether.get_status(temporal_client, handle.id)).budget.steps == 2


async def test_a_task_longer_than_history_keeps_reaches_the_child_whole(temporal_client: Client, worker: str):
    task = "x" * 1500 + " the part a cut would drop " + "y" * 1500
    handle = await tether.start_run(
        temporal_client, scripted_run("plan", calls(delegate(task, turn("read it"))), turn("{{last_output}}"),
                                      agents=AGENTS),
        task_queue=worker)
    result = await handle.result()

    assert (result.status, result.output) == ("completed", "read it")
    child = temporal_client.get_workflow_handle(f"{handle.id}.delegate-1-0")
    assert task in await history_text(child)


async def test_the_parents_history_holds_a_childs_answer_once(temporal_client: Client, worker: str):
    tag = uuid.uuid4().hex
    answer = f"answer-{tag}-42"  # computed in the child's sandbox: no script or input holds it
    child = delegate("find it", turn(shell=f"echo answer-{tag}-$((6*7))"), turn("{{last_output}}"))
    handle = await tether.start_run(
        temporal_client, scripted_run("plan", calls(child), turn("done"), agents=AGENTS),
        task_queue=worker)
    assert (await handle.result()).status == "completed"
    [step, _] = await tether.get_transcript(temporal_client, handle.id)
    assert step.tool_results[0].stdout == answer
    # In the child's completion; the next model call names the stored tool message.
    assert (await history_text(handle)).count(answer) == 1
