"""What a person reads comes in the order it happened: `watch` and `run --follow` print a
step's model text before its tool calls' results, code arguments show as code (not one JSON
line of `\\n`), and `transcript` of a run waiting at its first step shows that step."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client
from tether import client as tether

from tests.helpers import tether_cli, wait_for
from tests.scripts import scripted_run, turn

cli = tether_cli
CODE = "total = 6\nfor n in range(2):\n    total += n\nprint(total * 7)"


async def finished(temporal_client: Client, worker: str) -> str:
    handle = await tether.start_run(
        temporal_client, scripted_run("order", turn("I'll compute it", python=CODE),
                                      turn("it is {{last_output}}")), task_queue=worker)
    assert (await handle.result()).status == "completed"
    return handle.id


def code_block_in(out: str) -> None:
    """The code, line by line, indented under its argument's name; never as escaped JSON."""
    assert "\\n" not in out, out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "code:")
    assert [line[4:] for line in lines[at + 1:at + 5]] == CODE.splitlines(), out
    assert lines[at + 3].startswith("        total += n"), out  # the code's own indent kept


async def test_watch_prints_a_steps_text_before_its_tool_results_and_code_as_code(
    temporal_client: Client, temporal_address: str, worker: str
):
    run_id = await finished(temporal_client, worker)
    code, out, err = await cli(temporal_address, worker, "watch", run_id)
    assert code == 0, err
    assert out.index("I'll compute it") < out.index("→ 1-0") < out.index("← 1-0"), out
    assert out.count("I'll compute it") == 1, out
    code_block_in(out)


async def test_run_follow_prints_a_steps_text_before_its_tool_results(
    temporal_address: str, worker: str, tmp_path: Path
):
    script = tmp_path / "order.json"
    script.write_text(json.dumps({"turns": [turn("I'll compute it", python=CODE),
                                            turn("it is {{last_output}}")]}))
    code, out, err = await cli(temporal_address, worker, "run", "order", "--model",
                               f"scripted:{script}", "--follow")
    assert code == 0, err
    assert out.index("I'll compute it") < out.index("← 1-0"), out
    assert out.count("I'll compute it") == 1, out


async def test_transcript_shows_code_arguments_as_code(
    temporal_client: Client, temporal_address: str, worker: str
):
    run_id = await finished(temporal_client, worker)
    code, out, err = await cli(temporal_address, worker, "transcript", run_id)
    assert code == 0, err
    assert out.index("I'll compute it") < out.index("exit 0"), out
    code_block_in(out)


async def test_transcript_of_a_run_waiting_at_its_first_step_shows_the_step_in_flight(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("wait", turn("may I list the files?", shell="ls /"),
                                      turn("done"), approval={"tools": ["shell"]}),
        task_queue=worker)

    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, handle.id)).pending_approvals)

    await wait_for(waiting, what="the call to wait for approval")
    code, out, err = await cli(temporal_address, worker, "transcript", handle.id)
    assert code == 0, err
    assert "step 1" in out and "in flight" in out, out
    assert "may I list the files?" in out and 'shell {"command": "ls /"}' in out, out
    assert "awaiting approval" in out, out
    await tether.cancel(temporal_client, handle.id)
    assert (await handle.result()).status == "cancelled"
