"""Finding runs (`tether list`), starting one from a whole input (`--input-file` and flags),
and the JSON Schema other languages start runs with (`tether schema`)."""

from __future__ import annotations

import json
import shlex
import sys
import uuid
from pathlib import Path
from typing import Any

import jsonschema
from temporalio.client import Client
from tether import client as tether
from tether.contracts import names

from tests.helpers import run_command, tether_cli, wait_for
from tests.scripts import scripted_run, turn

cli = tether_cli


async def listed(temporal_address: str, worker: str, *args: str) -> list[dict[str, Any]]:
    code, out, err = await cli(temporal_address, worker, "list", "--json", *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


async def test_list_filters_runs_by_state_and_age_with_their_steps_cost_and_model(
    temporal_client: Client, temporal_address: str, worker: str
):
    done = await tether.start_run(
        temporal_client, scripted_run("quick", turn(shell="echo hi"), turn("bye")), task_queue=worker)
    await done.result()
    waiting = await tether.start_run(
        temporal_client, scripted_run("wait", turn(shell="echo hi"), turn("bye"),
                                      approval={"tools": ["shell"]}), task_queue=worker)
    invalid = await temporal_client.start_workflow(
        names.AGENT_RUN, {"task": 42}, id=f"invalid-{uuid.uuid4().hex[:8]}", task_queue=worker)

    async def visible() -> bool:  # visibility follows the runs a moment later
        ids = {r["workflow_id"]: r for r in await listed(temporal_address, worker, "--since", "1h")}
        return (ids.get(done.id, {}).get("state") == "completed"
                and ids.get(waiting.id, {}).get("state") == "awaiting_approval"
                and ids.get(invalid.id, {}).get("state") == "failed")

    await wait_for(visible, timeout=30, every=0.5, what="the runs in visibility")
    runs = {r["workflow_id"]: r for r in await listed(temporal_address, worker, "--since", "1h")}
    assert runs[done.id]["steps"] == 2 and runs[done.id]["model"] == "scripted"
    assert runs[done.id]["cost_usd"] == 0.0
    awaiting = await listed(temporal_address, worker, "--status", "awaiting_approval")
    assert waiting.id in {r["workflow_id"] for r in awaiting}
    assert done.id not in {r["workflow_id"] for r in awaiting}
    failed = await listed(temporal_address, worker, "--status", "failed")
    assert invalid.id in {r["workflow_id"] for r in failed}  # a run whose input was invalid too

    code, out, err = await cli(temporal_address, worker, "list", "--since", "1h")
    assert code == 0, err
    header = out.splitlines()[1:4]
    assert any("state" in line and "steps" in line and "cost $" in line and "model" in line
               for line in header), out
    assert done.id in out and "awaiting_approval" in out
    await tether.cancel(temporal_client, waiting.id, "done")


async def test_a_run_starts_from_a_whole_input_file_with_flags_over_it(
    temporal_client: Client, temporal_address: str, worker: str, tmp_path: Path
):
    whole = scripted_run(
        "from a file", turn(shell="echo from-the-file"), turn("{{last_output}}"),
        approval={"tools": ["python"]}, sandbox={"memory_mb": 300},
        system_prompt="You are terse.", budget={"max_steps": 7})
    path = tmp_path / "run.json"
    path.write_text(json.dumps(whole))
    code, out, err = await cli(temporal_address, worker, "run", "--input-file", str(path),
                               "--approve", "shell", "--tool-timeout", "30", "--max-tokens", "5000",
                               "--json")
    assert code == 0, err
    workflow_id = json.loads(out)["workflow_id"]
    history = await tether.get_run(temporal_client, workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    given = json.loads(started.input.payloads[0].data)
    assert given["task"] == "from a file" and given["system_prompt"] == "You are terse."
    assert given["approval"] == {"tools": ["shell"]}  # the flag replaces the file's list
    assert given["sandbox"] == {"memory_mb": 300, "tool_timeout_seconds": 30.0}
    assert given["budget"] == {"max_steps": 7, "max_tokens": 5000}

    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, workflow_id)).pending_approvals)

    await wait_for(waiting, what="the shell call to wait for approval, as the flag asked")
    await tether.approve(temporal_client, workflow_id, "1-0")
    assert (await tether.get_run(temporal_client, workflow_id).result()).output == "from-the-file"

    code, _, err = await cli(temporal_address, worker, "run", "--input-file", str(path),
                             "--max-steps", "0")
    assert code == 2 and "budget.max_steps" in err and "Traceback" not in err


async def test_the_schema_describes_what_another_sdk_sends_and_gets_back(
    temporal_client: Client, temporal_address: str, worker: str
):
    code, out, err = await cli(temporal_address, worker, "schema")
    assert code == 0, err
    schema = json.loads(out)
    assert schema["workflow_type"] == names.AGENT_RUN and schema["task_queue"] == worker
    assert "task" in schema["input"]["required"]
    run_input = {"task": "What is 6 * 7?", "budget": {"max_steps": 4},
                 "model": {"provider": "scripted", "script": {"turns": [
                     {"tool_calls": [{"name": "python", "arguments": {"code": "print(6 * 7)"}}]},
                     {"text": "6 * 7 = {{last_output}}"}]}}}
    jsonschema.validate(run_input, schema["input"])
    try:
        jsonschema.validate({"task": "x", "budjet": {}}, schema["input"])
        raise AssertionError("a misspelt field passed the schema")
    except jsonschema.ValidationError:
        pass
    # Another language's SDK stands in as the Temporal CLI: plain JSON in, plain JSON out.
    # (run_command: the suite's worker shares this event loop, which must not block)
    code, out, err = await run_command(shlex.join([
        str(Path(sys.executable).parent / "temporal"), "workflow", "execute", "--address",
        temporal_address, "--type", names.AGENT_RUN, "--task-queue", worker, "--input",
        json.dumps(run_input), "--output", "json"]))
    assert code == 0, err
    # The result as the server holds it, the JSON any SDK decodes (the CLI's own printing
    # turns an empty list into null).
    finished = json.loads(out)["workflowId"]
    [payload] = (await temporal_client.get_workflow_handle(finished).fetch_history()).events[-1] \
        .workflow_execution_completed_event_attributes.result.payloads
    answer = json.loads(payload.data)
    jsonschema.validate(answer, schema["result"])
    assert answer["output"] == "6 * 7 = 42"
    code, out, _ = await cli(temporal_address, worker, "schema", "events")
    assert code == 0 and "tool_call_started" in out
