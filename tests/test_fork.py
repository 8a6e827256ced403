"""Fork (issue 21): a new run that goes on from a step of another, through a real worker and
dev server. Its conversation is the origin's first steps by digest (no model or tool call of
them runs again), its workspace the origin's snapshot after that step; the origin, completed,
failed or running, is only read."""

from __future__ import annotations

import json

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether
from tether.contracts.activities import MODEL_CALL
from tether.workflows.visibility import FORK_OF

from tests.helpers import conversations, tether_cli, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, executions

EVERY_STEP = {"snapshots": "every_step"}


def lookup(order_id: str = "A-1", **more: object) -> dict:
    """A turn calling the worker's function tool: a step with no workspace."""
    return {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": order_id, **more}}]}


def script(*turns: dict) -> dict:
    return {"model": {"provider": "scripted", "script": {"turns": list(turns)}}}


async def model_calls(client: Client, handle) -> list[str]:
    return [a.summary for a in await activities(client, handle) if a.type == MODEL_CALL]


async def test_a_fork_at_step_1_of_3_calls_no_model_for_it_and_plays_its_script_from_its_first_turn(
    temporal_client: Client, worker: str
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "look orders up", lookup("A-1"), lookup("B-2"), turn("origin done"), tools=["lookup_order"]),
        task_queue=worker)
    assert (await origin.result()).steps == 3

    fork = await tether.fork_run(temporal_client, origin.id, at_step=1,
                                 changes=script(turn("fork says {{last_output}}")))
    result = await fork.result()
    # Its first turn answers at step 2, reading step 1's inherited tool result.
    assert result.status == "completed" and result.steps == 2
    assert json.loads(result.output.removeprefix("fork says ")) == {"id": "A-1", "status": "shipped"}
    assert await model_calls(temporal_client, fork) == ["step 2 · scripted"]
    assert not [a for a in await activities(temporal_client, fork) if a.type == "function_call"]
    steps = await tether.get_transcript(temporal_client, fork.id)
    assert [(s.step, s.inherited) for s in steps] == [(1, True), (2, False)]
    attributes = (await fork.describe()).typed_search_attributes
    assert attributes.get(FORK_OF) == origin.id
    # The origin is untouched.
    assert [s.step for s in await tether.get_transcript(temporal_client, origin.id)] == [1, 2, 3]


async def test_a_fork_that_keeps_the_origins_script_goes_on_at_its_next_turn_under_a_new_prompt(
    temporal_client: Client, worker: str
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "look an order up", lookup("A-1"), turn("origin's answer"), tools=["lookup_order"]),
        task_queue=worker)
    await origin.result()
    fork = await tether.fork_run(temporal_client, origin.id, at_step=1,
                                 changes={"system_prompt": "Answer in one word."})
    assert (await fork.result()).output == "origin's answer"
    assert await model_calls(temporal_client, fork) == ["step 2 · scripted"]
    [*_, mine] = await tether.get_transcript(temporal_client, fork.id)
    [*_, theirs] = await tether.get_transcript(temporal_client, origin.id)
    forked, original = conversations().load(mine.head), conversations().load(theirs.head)
    assert forked[0].content == "Answer in one word."
    assert forked[1:] == original[1:]  # the same messages, under the new prompt


async def test_a_fork_has_the_workspace_after_its_step_and_not_what_later_steps_wrote(
    temporal_client: Client, worker: str
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "write two files", turn(shell="echo one > one.txt"), turn(shell="echo two > two.txt"),
        turn("origin done"), sandbox=EVERY_STEP), task_queue=worker)
    assert (await origin.result()).status == "completed"

    fork = await tether.fork_run(temporal_client, origin.id, at_step=1, changes=script(
        turn(shell="ls; cat one.txt"), turn("{{last_output}}")))
    result = await fork.result()
    assert result.status == "completed" and result.output == "one.txt\none"
    assert await model_calls(temporal_client, fork) == ["step 2 · scripted", "step 3 · scripted"]


async def test_a_failed_run_is_forked_from_a_step_before_it_failed(
    temporal_client: Client, worker: str
):
    # The script has no turn for step 3: the run fails there, after two complete steps.
    origin = await tether.start_run(temporal_client, scripted_run(
        "look orders up", lookup("A-1"), lookup("A-1", include_items=True), tools=["lookup_order"]),
        task_queue=worker)
    with pytest.raises(WorkflowFailureError):
        await origin.result()

    fork = await tether.fork_run(temporal_client, origin.id, at_step=2, changes={
        **script(turn("read: {{last_output}}")), "message": "what does it hold?"})
    result = await fork.result()
    assert result.status == "completed" and result.steps == 3
    assert "kettle" in (result.output or "")  # step 2's result, never run again
    assert await model_calls(temporal_client, fork) == ["step 3 · scripted"]
    steps = await tether.get_transcript(temporal_client, fork.id)
    assert [(s.step, s.inherited, s.messages) for s in steps] == [
        (1, True, []), (2, True, []), (3, False, ["what does it hold?"])]


async def test_a_step_older_than_the_transcript_keeps_is_found_in_the_stores_chain(
    temporal_client: Client, worker: str
):
    # Step 2 alone lists the order's items; the transcript keeps steps 6 to 55 only.
    turns = [lookup("A-1"), lookup("A-1", include_items=True), *[lookup("A-1")] * 53, turn("done")]
    origin = await tether.start_run(temporal_client, scripted_run(
        "look orders up", *turns, tools=["lookup_order"], budget={"max_steps": 60}), task_queue=worker)
    assert (await origin.result()).steps == 56
    assert min(s.step for s in await tether.get_transcript(temporal_client, origin.id)) > 2

    outputs = {}
    for at_step in (2, 3):
        fork = await tether.fork_run(temporal_client, origin.id, at_step=at_step,
                                     changes=script(turn("{{last_output}}")))
        result = await fork.result()
        assert result.steps == at_step + 1
        outputs[at_step] = json.loads(result.output or "")
    assert outputs == {2: {"id": "A-1", "status": "shipped", "items": ["kettle", "mug"]},
                       3: {"id": "A-1", "status": "shipped"}}


async def test_a_fork_continues_as_new_with_its_inherited_steps_in_its_state_not_its_input(
    temporal_client: Client, worker: str
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "look orders up", lookup("A-1"), lookup("A-1"), turn("done"), tools=["lookup_order"]),
        task_queue=worker)
    await origin.result()
    fork = await tether.fork_run(temporal_client, origin.id, at_step=2, changes={
        **script(lookup("A-1", include_items=True), turn("{{last_output}}")),
        "continue_as_new_after_steps": 1})
    assert "kettle" in ((await fork.result()).output or "")
    first, second = await executions(temporal_client, fork)
    inputs = [decoded_input(history) for history in (first, second)]
    assert [len(i["fork"]["steps"]) for i in inputs] == [2, 0]
    assert inputs[1]["fork"]["of"] == origin.id
    steps = await tether.get_transcript(temporal_client, fork.id)
    assert [(s.step, s.inherited) for s in steps] == [(1, True), (2, True), (3, False), (4, False)]


def decoded_input(history) -> dict:
    started = history.events[0].workflow_execution_started_event_attributes
    return json.loads(started.input.payloads[0].data)


async def test_forking_at_a_step_without_a_snapshot_is_refused_saying_how_to_keep_them(
    temporal_client: Client, worker: str
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "write a file", turn(shell="echo one > one.txt"), turn("done")), task_queue=worker)
    await origin.result()
    with pytest.raises(tether.ForkRefused) as refused:
        await tether.fork_run(temporal_client, origin.id, at_step=1)
    assert str(refused.value) == (
        f"step 1 of {origin.id} has no workspace snapshot, so its files can't be restored in a "
        'fork: start the runs you mean to fork with "sandbox": {"snapshots": "every_step"}')


async def test_a_running_run_is_forked_and_goes_on_untouched(temporal_client: Client, worker: str):
    origin = await tether.start_run(temporal_client, scripted_run(
        "look orders up", lookup("A-1"), {"text": "slow", "delay_seconds": 30},
        tools=["lookup_order"]), task_queue=worker)
    await wait_for(lambda: origin_steps(temporal_client, origin.id), what="the origin's step 1")
    fork = await tether.fork_run(temporal_client, origin.id, at_step=1, changes=script(turn("fork done")))
    assert (await fork.result()).output == "fork done"
    assert (await origin.describe()).status.name == "RUNNING"
    await tether.cancel(temporal_client, origin.id)


async def origin_steps(client: Client, run_id: str) -> bool:
    return bool(await tether.get_transcript(client, run_id))


async def test_tether_fork_prints_the_new_id_and_tether_list_forks_lists_it(
    temporal_client: Client, worker: str, temporal_address: str, tmp_path
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "look an order up", lookup("A-1"), turn("done"), tools=["lookup_order"]), task_queue=worker)
    await origin.result()
    changes = tmp_path / "changes.json"
    changes.write_text(json.dumps(script(turn("forked"))))
    code, out, err = await tether_cli(temporal_address, worker, "fork", origin.id, "--at-step", "1",
                                      "--workflow-id", f"{origin.id}-cli-fork",
                                      "--input-file", str(changes))
    assert (code, out.strip(), err) == (0, f"{origin.id}-cli-fork", ""), err
    assert (await tether.get_run(temporal_client, f"{origin.id}-cli-fork").result()).output == "forked"
    # `tether watch` marks the steps the fork took over, as `tether transcript` does.
    code, out, err = await tether_cli(temporal_address, worker, "watch", f"{origin.id}-cli-fork", "--json")
    assert code == 0, err
    started = [e for e in map(json.loads, out.splitlines()) if e["kind"] == "step_started"]
    assert [(e["step"], e.get("inherited")) for e in started] == [(1, True), (2, None)]
    code, out, err = await tether_cli(temporal_address, worker, "watch", f"{origin.id}-cli-fork")
    assert code == 0, err
    assert "step 1 · scripted · inherited" in out and "step 2 · scripted ─" in out, out

    async def listed() -> bool:
        code, out, _ = await tether_cli(temporal_address, worker, "list", "--fork-of", origin.id, "--json")
        return code == 0 and [r["workflow_id"] for r in json.loads(out)] == [f"{origin.id}-cli-fork"]

    await wait_for(listed, what="the fork in tether list --fork-of")
    code, out, _ = await tether_cli(temporal_address, worker, "list", "--forks", "--json")
    forks = {r["workflow_id"]: r["fork_of"] for r in json.loads(out)}
    assert forks[f"{origin.id}-cli-fork"] == origin.id and origin.id not in forks


async def test_changes_a_fork_cannot_take_are_refused_naming_the_field(
    temporal_client: Client, worker: str
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "look an order up", lookup("A-1"), turn("done"), tools=["lookup_order"]), task_queue=worker)
    await origin.result()
    refusals = []
    for changes in ({"task": "another task"}, {"budget": {"max_steps": 0}}, {"colour": "red"}):
        with pytest.raises(tether.ForkRefused) as refused:
            await tether.fork_run(temporal_client, origin.id, at_step=1, changes=changes)
        refusals.append(str(refused.value))
    assert refusals == [
        "a fork can't change task: it goes on from the origin's conversation; start a new run for "
        "another task",
        "the fork's input is invalid: budget.max_steps: Input should be greater than or equal to 1",
        "the fork's input is invalid: colour: Extra inputs are not permitted"]
    assert not await tether.list_runs(temporal_client, fork_of=origin.id)


async def test_a_fork_of_steps_that_ran_nothing_in_the_sandbox_needs_no_snapshot_and_gets_the_files(
    temporal_client: Client, worker: str, tmp_path
):
    data = tmp_path / "notes.txt"
    data.write_text("given to the run\n")
    origin = await tether.start_run(temporal_client, scripted_run(
        "look an order up", lookup("A-1"), turn("done"), tools=["lookup_order", "shell"]),
        task_queue=worker, files=[data])
    await origin.result()
    fork = await tether.fork_run(temporal_client, origin.id, at_step=1, changes=script(
        turn(shell="cat notes.txt"), turn("{{last_output}}")))
    assert (await fork.result()).output == "given to the run"


async def test_a_forks_account_is_not_charged_for_the_tool_calls_it_inherited(
    temporal_client: Client, worker: str
):
    origin = await tether.start_run(temporal_client, scripted_run(
        "work", turn(shell="sleep 0.5"), turn("origin done"), sandbox=EVERY_STEP), task_queue=worker)
    assert (await origin.result()).status == "completed"
    account = f"fork-{origin.id[-8:]}"
    await tether.set_account(temporal_client, account, task_queue=worker)
    # Its step limit is spent by the inherited step: it ends before any model call of its own.
    fork = await tether.fork_run(temporal_client, origin.id, at_step=1,
                                 changes={"budget": {"account": account, "max_steps": 1}})
    result = await fork.result()
    assert (result.status, result.steps) == ("budget_exhausted", 1), result.stop_reason
    shown = await tether.account_status(temporal_client, account)
    assert (shown.calls, shown.sandbox_seconds) == (0, 0.0)  # step 1's 0.5 s were the origin's
