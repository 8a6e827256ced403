"""A failed tool call goes to the model as its result; it never fails the run."""

from __future__ import annotations

import json

from temporalio.client import Client
from tether import client as tether

from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, conversation


async def test_calls_that_cannot_run_are_answered_with_why_and_the_run_goes_on(
    temporal_client: Client, worker: str
):
    bad_calls = {"text": None, "tool_calls": [
        {"name": "teleport", "arguments": {"to": "mars"}},
        {"name": "shell", "arguments": {}},
        {"name": "shell", "arguments": {"command": ["ls"]}},
        {"name": "python", "arguments": {"code": "print(1)"}},
    ]}
    handle = await tether.start_run(
        temporal_client,
        scripted_run("bad calls", bad_calls, turn("recovered"), tools=["shell", "read_file"]),
        task_queue=worker)
    result = await handle.result()
    assert (result.status, result.output, result.steps) == ("completed", "recovered", 2)

    expected = [
        "unknown tool 'teleport'; available: shell, read_file",
        "shell needs a string argument 'command'",
        "shell needs a string argument 'command'",
        "tool 'python' is not enabled for this run; available: shell, read_file",
    ]
    step = (await tether.get_transcript(temporal_client, handle.id))[0]
    assert [(r.exit_code, r.stderr) for r in step.tool_results] == [(126, e) for e in expected]
    runs = await activities(temporal_client, handle)
    # Nothing reached a sandbox, so none was made.
    assert not [r for r in runs if r.type in ("tool_call", "acquire_sandbox")]
    told = [json.loads(m.content)["stderr"] for m in conversation(runs) if m.role == "tool"]
    assert told == expected


async def test_a_command_that_fails_in_the_sandbox_is_a_result_not_a_failure(
    temporal_client: Client, worker: str
):
    result = await tether.run(
        temporal_client,
        scripted_run("fail", turn(shell="echo oops >&2; exit 3"), turn("saw it")),
        task_queue=worker)
    assert (result.status, result.output) == ("completed", "saw it")
