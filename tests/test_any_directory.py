"""A person runs `tether` from whatever directory they are in: every process of theirs finds
the one data directory (the store the worker reads, the dev server's database), and a
download that finds nothing it expected says why, with a non-zero code, leaving nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from temporalio.client import Client
from tether import client as tether
from tether.settings import TetherSettings

from tests.helpers import suite_settings
from tests.scripts import scripted_run, turn

TETHER = str(Path(sys.executable).parent / "tether")


async def tether_in(directory: Path, temporal_address: str, worker: str, *args: str,
                    **env: str) -> tuple[int, str, str]:
    """`tether ARGS` typed in `directory`, against the suite's server and queue, with the
    data directory its default (no TETHER_DATA_DIR) unless `env` gives one."""
    environment = {k: v for k, v in os.environ.items() if k != "TETHER_DATA_DIR"}
    process = await asyncio.create_subprocess_exec(
        TETHER, *args, cwd=directory, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**environment, "TETHER_TASK_QUEUE": worker, "TEMPORAL_ADDRESS": temporal_address,
             "COLUMNS": "200", **env})
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
def xdg_of_the_worker(tmp_path: Path) -> Path:
    """An XDG_DATA_HOME whose `tether` is the suite worker's data directory."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "tether").symlink_to(suite_settings().data_path, target_is_directory=True)
    return xdg


def test_the_default_data_directory_is_the_same_absolute_one_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("TETHER_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    here = TetherSettings().data_path
    monkeypatch.chdir("/")
    assert TetherSettings().data_path == here == tmp_path / "xdg" / "tether"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert TetherSettings().data_path == Path.home() / ".local" / "share" / "tether"


async def test_a_file_given_from_another_directory_reaches_the_worker(
    temporal_address: str, worker: str, tmp_path: Path, xdg_of_the_worker: Path
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("from elsewhere\n")
    (elsewhere / "script.json").write_text(json.dumps(
        {"turns": [turn(shell="cat notes.txt"), turn("{{last_output}}")]}))
    code, out, err = await tether_in(
        elsewhere, temporal_address, worker, "run", "read", "--model", "scripted:script.json",
        "--file", "notes.txt", "--wait", "--json", XDG_DATA_HOME=str(xdg_of_the_worker))
    assert code == 0, err
    assert json.loads(out)["output"] == "from elsewhere"
    assert not (elsewhere / ".tether").exists()


@pytest.fixture
async def run_with_artifacts(temporal_client: Client, worker: str) -> str:
    handle = await tether.start_run(
        temporal_client, scripted_run("write", turn(shell="mkdir -p out && echo hi > out/a.txt"),
                                      turn("done"), artifacts=["out/**"]),
        task_queue=worker)
    assert (await handle.result()).status == "completed"
    return handle.id


async def test_a_download_from_a_store_that_does_not_exist_fails_naming_it_and_leaves_nothing(
    temporal_address: str, worker: str, tmp_path: Path, run_with_artifacts: str
):
    code, _, err = await tether_in(tmp_path, temporal_address, worker, "artifacts",
                                   run_with_artifacts, "--download", "got",
                                   XDG_DATA_HOME=str(tmp_path / "xdg"))
    store = tmp_path / "xdg" / "tether" / "store"
    assert code != 0
    assert "Traceback" not in err
    assert f"the store {store} does not exist" in err and "TETHER_DATA_DIR" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_a_download_from_a_store_without_the_runs_files_fails_saying_so(
    temporal_address: str, worker: str, tmp_path: Path, run_with_artifacts: str
):
    (tmp_path / "other" / "store").mkdir(parents=True)
    code, _, err = await tether_in(tmp_path, temporal_address, worker, "artifacts",
                                     run_with_artifacts, "--download", "got",
                                     TETHER_DATA_DIR=str(tmp_path / "other"))
    assert code != 0
    assert "Traceback" not in err
    assert "out/a.txt" in err and "not in" in err and "the workers" in err, err
    assert not (tmp_path / "got").exists()


async def test_tether_dev_names_a_dot_tether_of_an_earlier_tether_it_no_longer_reads(
    temporal_address: str, tmp_path: Path
):
    (tmp_path / ".tether").mkdir()
    (tmp_path / ".tether" / "temporal.db").write_bytes(b"")
    # The worker stops at once (its tools entry does not load): only the note matters here.
    _, _, err = await tether_in(tmp_path, temporal_address, "unused", "dev",
                                XDG_DATA_HOME=str(tmp_path / "xdg"), TETHER_TOOLS="nowhere.tools")
    assert f"note: {tmp_path / '.tether'} is no longer read" in err, err
    assert f"data lives in {tmp_path / 'xdg' / 'tether'}" in err
    assert f"TETHER_DATA_DIR={tmp_path / '.tether'}" in err
