"""Files in: `--file` / `start_run(files=...)` put files in the run's /workspace before its
first tool call, through the content store by digest, never through history. What can't be
placed is refused before the run starts, with a message naming the problem."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether
from tether.contracts import names
from tether.contracts.activities import ACQUIRE_SANDBOX
from tether.store.files import FilesRefused
from tether.store.streams import put_stream

from tests.helpers import history_text, kill_the_executor, sandboxes_of, suite_settings, wait_for
from tests.scripts import scripted_run, turn
from tests.test_cli_control import cli

MISSING = "sha256:" + "0" * 64


def inputs(tmp_path):
    """A file and a directory (with a subdirectory), each line unique to this test."""
    data = tmp_path / "data.csv"
    data.write_text("name,value\nkept-out-of-history,42\n" * 1000)
    (tmp_path / "inputs" / "sub").mkdir(parents=True)
    (tmp_path / "inputs" / "a.txt").write_text("alpha\n")
    (tmp_path / "inputs" / "sub" / "b.txt").write_text("beta\n")
    return data, tmp_path / "inputs"


async def failure_of(handle) -> str:
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    return str(failed.value.cause)


async def test_a_file_and_a_directory_are_in_the_workspace_at_the_first_tool_call(
    temporal_client: Client, worker: str, tmp_path
):
    data, directory = inputs(tmp_path)
    handle = await tether.start_run(
        temporal_client,
        scripted_run("read the files", turn(shell="sha256sum data.csv; cat inputs/a.txt inputs/sub/b.txt;"
                                                  " stat -c '%U %a' data.csv"),
                     turn("{{last_output}}")),
        task_queue=worker, files=[data, directory])
    result = await handle.result()
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert result.status == "completed"
    assert result.output == f"{digest}  data.csv\nalpha\nbeta\nsandbox 644"
    history = await history_text(handle)
    # The input names each file by digest; the contents travel through the store only.
    compact = history.replace('\\"', '"').replace('": "', '":"')
    assert f'"data.csv":"sha256:{digest}"' in compact
    assert '"inputs/sub/b.txt":"sha256:' in compact
    assert "kept-out-of-history" not in history


async def test_files_are_placed_again_in_the_sandbox_that_replaces_a_lost_one(
    temporal_client: Client, worker: str, tmp_path
):
    data, _ = inputs(tmp_path)
    handle = await tether.start_run(
        temporal_client,
        scripted_run("survive", turn(shell="sleep 3; wc -l < data.csv"), turn("{{last_output}}")),
        task_queue=worker, files=[data])
    await wait_for(lambda: sandboxes_of(handle.id), what="the run's sandbox")
    [first] = sandboxes_of(handle.id)
    await asyncio.sleep(1)  # the call is running in it
    await kill_the_executor(first.id)
    result = await handle.result()
    assert result.status == "completed" and result.output == "2000"
    status = await tether.get_status(temporal_client, handle.id)
    assert status.last_error is not None and "lost" in status.last_error


async def test_a_missing_file_is_refused_before_anything_starts(
    temporal_client: Client, worker: str, temporal_address: str, tmp_path
):
    with pytest.raises(FilesRefused, match="no such file or directory"):
        await tether.start_run(temporal_client, scripted_run("x", turn("done")), task_queue=worker,
                               files=[tmp_path / "nope.csv"])
    code, _, err = await cli(temporal_address, worker, "run", "x", "--model", "scripted:examples/demo.json",
                             "--file", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "--file refused" in err and "nope.csv: no such file or directory" in err


async def test_a_digest_the_store_lacks_fails_the_run_at_its_start(temporal_client: Client, worker: str):
    handle = await temporal_client.start_workflow(
        names.AGENT_RUN, scripted_run("x", turn(shell="ls"), turn("done"), files={"data.csv": MISSING}),
        id=f"files-missing-{worker}", task_queue=worker)
    reason = await failure_of(handle)
    assert "file 'data.csv'" in reason and "is not in the content store" in reason
    assert ACQUIRE_SANDBOX not in await history_text(handle)  # refused at start: no sandbox asked for


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/cron.d/x", "a/../../b", "a//b", "back\\slash"])
async def test_a_name_that_leaves_the_workspace_is_refused(
    temporal_client: Client, worker: str, name: str
):
    run = scripted_run("x", turn("done"), files={name: MISSING})
    with pytest.raises(ValidationError, match="files"):
        await tether.start_run(temporal_client, run, task_queue=worker)
    # Started past the client's check, the run itself refuses the input at once.
    handle = await temporal_client.start_workflow(
        names.AGENT_RUN, run, id=f"files-name-{abs(hash(name))}-{worker}", task_queue=worker)
    reason = await failure_of(handle)
    assert "invalid AgentRun input: files" in reason and repr(name) in reason


async def test_a_64_mib_file_is_placed_and_read_back_by_its_digest(
    temporal_client: Client, worker: str, tmp_path
):
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    handle = await tether.start_run(
        temporal_client,
        scripted_run("read it", turn(shell="sha256sum big.bin; stat -c '%U %s' big.bin"),
                     turn("{{last_output}}")),
        task_queue=worker, files=[big])
    result = await handle.result()
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert result.status == "completed", result.stop_reason
    assert result.output == f"{digest}  big.bin\nsandbox {64 << 20}"


async def test_a_file_over_the_cap_is_refused_by_the_client_and_by_the_worker_naming_the_setting(
    temporal_client: Client, worker: str, temporal_address: str, tmp_path
):
    cap = suite_settings().max_file_mb << 20
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(cap + 1)
    with pytest.raises(FilesRefused, match=f"{cap + 1} bytes.*TETHER_MAX_FILE_MB={cap >> 20}"):
        await tether.start_run(temporal_client, scripted_run("x", turn("done")), task_queue=worker,
                               files=[big])
    code, _, err = await cli(temporal_address, worker, "run", "x", "--model", "scripted:examples/demo.json",
                             "--file", str(big))
    assert code == 2 and "TETHER_MAX_FILE_MB" in err
    # Put in the store by other means, it is refused by the worker when the run starts.
    with big.open("rb") as source:
        digest = put_stream(tether.content_store(), source)
    handle = await temporal_client.start_workflow(
        names.AGENT_RUN,
        scripted_run("x", turn(shell="ls"), turn("done"), files={"big.bin": f"sha256:{digest}"}),
        id=f"files-big-{worker}", task_queue=worker)
    reason = await failure_of(handle)
    assert f"is {cap + 1} bytes; the limit is {cap} (TETHER_MAX_FILE_MB=64 on the worker" in reason
    assert ACQUIRE_SANDBOX not in await history_text(handle)  # refused at start: no sandbox asked for


async def test_files_that_do_not_fit_the_workspace_are_refused_at_start(
    temporal_client: Client, worker: str, tmp_path
):
    files = {}
    for index in range(3):
        files[f"part{index}.bin"] = "sha256:" + tether.content_store().put(bytes([index]) * (600 << 10))
    handle = await temporal_client.start_workflow(
        names.AGENT_RUN,
        scripted_run("x", turn(shell="ls"), turn("done"), files=files, sandbox={"disk_mb": 1}),
        id=f"files-full-{worker}", task_queue=worker)
    reason = await failure_of(handle)
    assert "its workspace holds 1 MiB" in reason and "disk_mb" in reason


async def test_the_cli_places_files_and_prints_what_the_tool_read(
    temporal_address: str, worker: str, tmp_path
):
    data, directory = inputs(tmp_path)
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": [turn(shell="head -2 data.csv; ls -R inputs"),
                                            turn("{{last_output}}")]}))
    code, out, err = await cli(temporal_address, worker, "run", "read", "--model", f"scripted:{script}",
                               "--file", str(data), "--file", f"{directory}/", "--wait", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "completed"
    assert result["output"].startswith("name,value\nkept-out-of-history,42\ninputs:\na.txt\nsub")
