"""An approver sees everything that will run: a waiting call's whole arguments, the model's
text of its step and the digest that names them, in `tether status` and `tether watch`; an
approval that names another digest is refused, and the call does not run."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from tether import client as tether
from tether.contracts import PendingApproval, names

from tests.helpers import ROOT, tether_cli, wait_for
from tests.scripts import scripted_run, turn

cli = tether_cli

HIDDEN = "; echo PWNED ;"
COMMAND = ": " + "a" * 1100 + f" {HIDDEN} : " + "b" * 1100
"""Over the 2,000 characters history keeps of a string, with the part that matters where
the cut falls: in the middle."""
REASON = "I will tidy the workspace before the build."
OTHER_DIGEST = "sha256:" + "0" * 64


def digest_of(arguments: dict[str, Any]) -> str:
    """The digest as docs/steering.md defines it: sha256 of the arguments' canonical JSON."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


DIGEST = digest_of({"command": COMMAND})


async def start_waiting(temporal_client: Client, worker: str) -> tuple[Any, PendingApproval]:
    handle = await tether.start_run(
        temporal_client,
        scripted_run("tidy", turn(REASON, shell=COMMAND), turn("{{last_output}}"),
                     approval={"tools": ["shell"]}),
        task_queue=worker)

    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, handle.id)).pending_approvals)

    await wait_for(waiting, what="the call to wait for approval")
    [pending] = (await tether.get_status(temporal_client, handle.id)).pending_approvals
    return handle, pending


def test_the_digest_is_of_the_canonical_json_whatever_the_key_order():
    from tether.contracts.digests import arguments_digest

    assert arguments_digest({"b": 1, "a": "é\n"}) == arguments_digest({"a": "é\n", "b": 1})
    assert arguments_digest({"a": "é\n", "b": 1}) == digest_of({"a": "é\n", "b": 1})
    assert arguments_digest({"a": "x"}) != arguments_digest({"a": "x "})


async def test_status_prints_a_long_waiting_command_whole_with_the_steps_text_and_its_digest(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle, pending = await start_waiting(temporal_client, worker)
    assert HIDDEN not in json.dumps(pending.arguments)  # history holds it cut in the middle

    code, out, err = await cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    assert COMMAND in out
    assert REASON in out
    assert f"tether approve {handle.id} 1-0 --digest {DIGEST}" in out

    code, out, err = await cli(temporal_address, worker, "status", handle.id, "--json")
    assert code == 0, err
    [shown] = json.loads(out)["pending_approvals"]
    assert (shown["full_arguments"], shown["full_text"]) == ({"command": COMMAND}, REASON)
    assert shown["arguments_digest"] == DIGEST

    await handle.execute_update(names.UPDATE_CANCEL, "seen")
    assert (await handle.result()).status == "cancelled"


async def test_watch_shows_the_steps_text_the_digest_and_the_command_that_prints_a_cut_call_whole(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("tidy", turn(REASON, shell=COMMAND), turn("{{last_output}}"),
                     approval={"tools": ["shell"]}),
        task_queue=worker)
    env = {**os.environ, "TETHER_TASK_QUEUE": worker, "TEMPORAL_ADDRESS": temporal_address,
           "COLUMNS": "200"}
    terminal = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", "watch", handle.id, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert terminal.stdout is not None
    shown = ""
    try:
        while "--deny" not in shown:  # the last line of a waiting call's block
            line = await asyncio.wait_for(terminal.stdout.readline(), 60)
            assert line, f"the watch ended early: {shown}"
            shown += line.decode()
    finally:
        await handle.execute_update(names.UPDATE_CANCEL, "seen")
    await asyncio.wait_for(terminal.communicate(), 60)
    assert REASON in shown
    assert DIGEST in shown
    assert f"tether status {handle.id}" in shown
    # Cut, the call is not offered for approval from here: only once read whole.
    assert "--digest" not in shown


async def test_an_approval_naming_another_digest_is_refused_and_the_call_does_not_run(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle, _ = await start_waiting(temporal_client, worker)

    code, _, err = await cli(temporal_address, worker, "approve", handle.id, "1-0",
                             "--digest", OTHER_DIGEST)
    assert code == 2
    assert "approve refused" in err and DIGEST[:19] in err and DIGEST not in err
    status = await tether.get_status(temporal_client, handle.id)
    assert status.state == "awaiting_approval"
    assert [p.call_id for p in status.pending_approvals] == ["1-0"]

    code, out, err = await cli(temporal_address, worker, "approve", handle.id, "1-0",
                               "--digest", DIGEST)
    assert code == 0, err
    assert "call 1-0 (shell) approved" in out
    assert (await handle.result()).output == "PWNED"


async def test_the_clients_approve_refuses_another_digest_and_approves_the_one_waiting(
    temporal_client: Client, worker: str
):
    handle, pending = await start_waiting(temporal_client, worker)
    assert pending.arguments_digest == DIGEST

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await tether.approve(temporal_client, handle.id, "1-0", digest=OTHER_DIGEST)
    assert "digest" in str(refused.value.cause)
    assert (await tether.get_status(temporal_client, handle.id)).state == "awaiting_approval"

    assert await tether.approve(temporal_client, handle.id, "1-0", digest=DIGEST) == (
        "call 1-0 (shell) approved")
    assert (await handle.result()).output == "PWNED"


async def test_status_prints_waiting_code_as_it_reads_below_its_json(
    temporal_client: Client, temporal_address: str, worker: str
):
    code = "import os\nfor name in os.listdir('.'):\n    print(name)"
    handle = await tether.start_run(
        temporal_client,
        scripted_run("list", turn("Listing.", python=code), turn("done"), approval={"tools": ["python"]}),
        task_queue=worker)

    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, handle.id)).pending_approvals)

    await wait_for(waiting, what="the call to wait for approval")
    exit_code, out, err = await cli(temporal_address, worker, "status", handle.id)
    assert exit_code == 0, err
    assert "  code:\n    import os\n    for name in os.listdir('.'):\n        print(name)\n" in out
    await handle.execute_update(names.UPDATE_CANCEL, "seen")
    assert (await handle.result()).status == "cancelled"


async def test_a_call_history_holds_cut_is_not_approved_without_its_digest_but_may_be_denied(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle, _ = await start_waiting(temporal_client, worker)

    code, _, err = await cli(temporal_address, worker, "approve", handle.id, "1-0")
    assert code == 2
    assert "approve refused" in err and f"tether status {handle.id}" in err
    assert (await tether.get_status(temporal_client, handle.id)).state == "awaiting_approval"

    code, out, err = await cli(temporal_address, worker, "approve", handle.id, "1-0", "--deny",
                               "--reason", "too long to read")
    assert code == 0, err
    assert "call 1-0 (shell) denied" in out
    result = await handle.result()
    assert result.output != "PWNED"
    [step] = [s for s in await tether.get_transcript(temporal_client, handle.id) if s.step == 1]
    assert step.tool_results[0].stderr == "a person denied this call: too long to read"
