"""Artifacts out: the files a run's `artifacts` globs match are collected into the store when
it ends, however it ends, before its sandbox goes; `tether artifacts` and
`download_artifacts` fetch them. Nothing a tool does makes collection read outside the
workspace, nor a download write outside its directory."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether
from tether.contracts import ArtifactRecord
from tether.store import LocalContentStore
from tether.store.files import ArtifactExists, write_artifacts
from tether.store.streams import read_chunks

from tests.helpers import sandboxes_of, suite_settings, wait_for
from tests.scripts import scripted_run, turn
from tests.test_cli_control import cli

MAX_FILE_BYTES = suite_settings().max_file_mb << 20
"""The suite workers' cap on an artifact (TETHER_MAX_FILE_MB, which conftest sets)."""
WRITE_OUTPUTS = "mkdir -p out/data && printf '# report\\n' > out/report.md && " \
                "head -c 3000 /dev/urandom > out/data/blob.bin && echo notes > notes.md && echo no > skip.txt"
HOSTILE = " && ".join([
    "mkdir -p out",
    "echo good > out/good.txt",
    "ln -s /etc/passwd out/passwd",                 # a link to a file outside
    "ln -s /etc out/etc",                           # a link to a directory outside
    "ln -s good.txt out/inside-link",               # even a link that stays inside
    "echo twice > out/one && ln out/one out/two",   # a hard link: two names, one file
    "mkfifo out/fifo",                              # mknod is refused in the sandbox:
    "python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('out/sock')\"",  # fifo, socket
    f"head -c {MAX_FILE_BYTES + 1} /dev/zero > out/huge.bin",
    "touch 'out/back\\slash' \"out/new$(printf '\\nline')\"",
])


async def cli_json(temporal_address: str, worker: str, *args: str) -> dict:
    code, out, err = await cli(temporal_address, worker, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def local_files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_a_completed_runs_artifacts_are_listed_stored_and_downloaded(
    temporal_client: Client, temporal_address: str, worker: str, tmp_path
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("write", turn(shell=f"{WRITE_OUTPUTS} && sha256sum out/data/blob.bin"),
                     turn("{{last_output}}"), artifacts=["out/**", "*.md"]),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "completed"
    by_path = {a.path: a for a in result.artifacts}
    assert sorted(by_path) == ["notes.md", "out/data/blob.bin", "out/report.md"]
    assert result.skipped_artifacts == []
    assert by_path["out/data/blob.bin"].sha256 == result.output.split()[0]
    assert by_path["out/report.md"].size == len("# report\n")
    assert sandboxes_of(handle.id) == []  # collected, then released

    downloaded = await tether.download_artifacts(temporal_client, handle.id, tmp_path / "got")
    files = local_files(tmp_path / "got")
    assert sorted(files) == sorted(by_path) and downloaded.skipped == []
    assert files["out/report.md"] == b"# report\n"
    assert hashlib.sha256(files["out/data/blob.bin"]).hexdigest() == by_path["out/data/blob.bin"].sha256

    listed = await cli_json(temporal_address, worker, "artifacts", handle.id)
    assert [a["path"] for a in listed["artifacts"]] == ["notes.md", "out/data/blob.bin", "out/report.md"]
    fetched = await cli_json(temporal_address, worker, "artifacts", handle.id,
                             "--download", str(tmp_path / "cli"))
    assert len(fetched["written"]) == 3 and local_files(tmp_path / "cli") == files
    code, out, err = await cli(temporal_address, worker, "artifacts", handle.id)
    assert code == 0 and "out/data/blob.bin" in out and "3,000" in out, err


async def test_an_artifact_of_64_mib_is_collected_whole_into_the_store(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("write", turn(shell="mkdir out && head -c 67108864 /dev/urandom > out/big.bin"
                                         " && sha256sum out/big.bin"),
                     turn("{{last_output}}"), artifacts=["out/*"]),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "completed", result.stop_reason
    [big] = result.artifacts
    assert (big.path, big.size, big.sha256) == ("out/big.bin", 64 << 20, result.output.split()[0])
    size, chunks = read_chunks(tether.content_store(), big.sha256)
    stored = hashlib.sha256()
    for chunk in chunks:
        stored.update(chunk)
    assert size == 64 << 20 and stored.hexdigest() == big.sha256


async def test_all_artifacts_together_may_be_as_large_as_the_runs_workspace_and_no_larger(
    temporal_client: Client, worker: str
):
    # Sparse files: each lists at its full size, while the workspace holds next to nothing.
    async def collected(disk_mb: int, files: int, mb: int):
        return await tether.run(temporal_client, scripted_run(
            "write", turn(shell=f"mkdir out && for n in $(seq {files}); do truncate -s {mb}M out/$n.bin;"
                                " done"),
            turn("done"), artifacts=["out/*"], sandbox={"disk_mb": disk_mb}), task_queue=worker)

    # 300 MiB in all, past the 256 MiB of a default workspace, in a workspace of 512.
    large = await collected(512, 5, 60)
    assert [(a.path, a.size) for a in large.artifacts] == [(f"out/{n}.bin", 60 << 20) for n in range(1, 6)]
    assert large.skipped_artifacts == []
    small = await collected(8, 2, 5)
    assert [a.path for a in small.artifacts] == ["out/1.bin"]
    assert [(s.path, s.reason) for s in small.skipped_artifacts] == [
        ("out/2.bin", "over the 8388608-byte limit for all artifacts (the run's sandbox.disk_mb)")]


async def test_a_run_out_of_budget_still_gives_its_artifacts(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("write", turn(shell="mkdir out && echo partial > out/progress.txt"),
                     turn(shell="echo never"), artifacts=["out/**"], budget={"max_steps": 1}),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "budget_exhausted"
    assert [(a.path, a.size) for a in result.artifacts] == [("out/progress.txt", len("partial\n"))]


async def test_a_cancelled_run_still_gives_its_artifacts(temporal_client: Client, worker: str):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("write", turn(shell="mkdir out && echo so-far > out/progress.txt"),
                     {"text": "thinking", "delay_seconds": 60}, artifacts=["out/**"]),
        task_queue=worker)

    async def wrote() -> bool:
        return (await tether.get_status(temporal_client, handle.id)).step >= 2

    await wait_for(wrote, what="the second step")
    await tether.cancel(temporal_client, handle.id, "enough")
    result = await handle.result()
    assert result.status == "cancelled"
    assert [a.path for a in result.artifacts] == ["out/progress.txt"]


async def test_a_run_cancelled_from_temporal_or_failed_lists_its_artifacts_by_query(
    temporal_client: Client, worker: str, tmp_path
):
    # Failed: the script ends on a tool call, so the next model turn fails for good.
    failed = await tether.start_run(
        temporal_client,
        scripted_run("fail", turn(shell="mkdir out && echo before-failing > out/log.txt"),
                     artifacts=["out/**"]),
        task_queue=worker)
    with pytest.raises(WorkflowFailureError):
        await failed.result()
    found = await tether.get_artifacts(temporal_client, failed.id)
    assert [a.path for a in found.artifacts] == ["out/log.txt"]
    downloaded = await tether.download_artifacts(temporal_client, failed.id, tmp_path / "failed")
    assert local_files(tmp_path / "failed") == {"out/log.txt": b"before-failing\n"}
    assert [p.name for p in downloaded.written] == ["log.txt"]

    # Cancelled through Temporal (not the update): the workflow ends cancelled, no result.
    cancelled = await tether.start_run(
        temporal_client,
        scripted_run("cancel", turn(shell="mkdir out && echo so-far > out/progress.txt"),
                     {"text": "thinking", "delay_seconds": 60}, artifacts=["out/**"]),
        task_queue=worker)

    async def wrote() -> bool:
        return (await tether.get_status(temporal_client, cancelled.id)).step >= 2

    await wait_for(wrote, what="the second step")
    await cancelled.cancel()
    with pytest.raises(WorkflowFailureError):
        await cancelled.result()
    found = await tether.get_artifacts(temporal_client, cancelled.id)
    assert [a.path for a in found.artifacts] == ["out/progress.txt"]
    await wait_for(lambda: sandboxes_of(cancelled.id) == [], timeout=20, what="the sandbox removed")


async def test_a_run_that_never_had_a_sandbox_has_no_artifacts(temporal_client: Client, worker: str):
    result = await (await tether.start_run(
        temporal_client, scripted_run("answer", turn("42"), artifacts=["**"]), task_queue=worker)).result()
    assert result.status == "completed" and result.artifacts == [] and result.skipped_artifacts == []


async def test_hostile_entries_are_skipped_and_reported_and_nothing_leaves_the_directory(
    temporal_client: Client, temporal_address: str, worker: str, tmp_path
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("hostile", turn(shell=HOSTILE), turn("done"), artifacts=["out/**"]),
        task_queue=worker)
    result = await handle.result()
    assert result.status == "completed", result.stop_reason
    assert [(a.path, a.size) for a in result.artifacts] == [("out/good.txt", 5)]
    skipped = {s.path: s.reason for s in result.skipped_artifacts}
    assert skipped["out/passwd"].startswith("symbolic link to '/etc/passwd' (outside the workspace)")
    assert skipped["out/etc"].startswith("symbolic link to '/etc' (outside the workspace)")
    assert skipped["out/inside-link"].startswith("symbolic link to 'good.txt' (inside the workspace)")
    assert skipped["out/one"].startswith("a hard link (2 names") and skipped["out/two"] == skipped["out/one"]
    assert skipped["out/fifo"] == "a fifo, not a regular file"
    assert skipped["out/sock"] == "a socket, not a regular file"
    assert skipped["out/huge.bin"] == (
        f"{MAX_FILE_BYTES + 1} bytes is over the {MAX_FILE_BYTES}-byte limit per artifact")
    for name in ("out/back\\slash", "out/new\nline"):
        assert skipped[name] == "its name holds a backslash or a control character"
    assert len(skipped) == 10

    # The download writes the one good file, under its directory only.
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "download"
    code, out, err = await cli(temporal_address, worker, "artifacts", handle.id, "--download", str(target))
    assert code == 0, err
    assert "wrote 1 file(s) under" in out and "skipped: a fifo, not a regular file" in out
    assert local_files(target) == {"out/good.txt": b"good\n"}
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["download", "outside"]


async def test_a_download_writes_nothing_outside_its_directory_whatever_the_records_say(tmp_path):
    store = tether.content_store()
    digest = store.put(b"payload\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    # Links already in the directory lead out: they are replaced or refused, never written through.
    (target / "out").symlink_to(outside, target_is_directory=True)
    (target / "file.txt").symlink_to(outside / "file.txt")
    (target / "linked.txt").write_text("original\n")
    os.link(target / "linked.txt", outside / "hard.txt")
    names = ["../escape.txt", "/tmp/absolute.txt", "a/../../b.txt", "a//b.txt", "sub\\x.txt",
             "out/x.txt", "file.txt", "linked.txt", "ok/fine.txt"]
    records = [ArtifactRecord(path=name, size=8, sha256=digest) for name in names]
    records.append(ArtifactRecord(path="wrong.txt", size=8, sha256=hashlib.sha256(b"other").hexdigest()))
    done = write_artifacts(store, records, target, overwrite=True)

    written = sorted(str(p.relative_to(target)) for p in done.written)
    assert written == ["file.txt", "linked.txt", "ok/fine.txt"]
    reasons = {s.path: s.reason for s in done.skipped}
    for name in ("../escape.txt", "/tmp/absolute.txt", "a/../../b.txt", "a//b.txt", "sub\\x.txt"):
        assert "artifact name" in reasons[name]
    assert "not written" in reasons["out/x.txt"]  # the link `out` is not followed
    assert "wrong.txt" in reasons
    assert list(outside.iterdir()) == [outside / "hard.txt"]
    assert (outside / "hard.txt").read_text() == "original\n"  # replaced by name, not written through
    assert not (target / "file.txt").is_symlink() and (target / "file.txt").read_bytes() == b"payload\n"
    assert not (tmp_path / "escape.txt").exists() and not os.path.exists("/tmp/absolute.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "target"]


def test_an_artifact_glob_that_leaves_the_workspace_is_refused():
    for glob in ("../*", "/etc/*", "out/../../x"):
        with pytest.raises(ValueError, match="artifact glob"):
            tether.AgentRunInput.model_validate({"task": "x", "artifacts": [glob]})


def stored(*names: str) -> list[ArtifactRecord]:
    """Records of artifacts named `names`, each holding its own name, in the suite's store."""
    store = tether.content_store()
    return [ArtifactRecord(path=name, size=len(name), sha256=store.put(name.encode())) for name in names]


def test_a_download_writes_no_dotfile_unless_a_glob_names_it(tmp_path):
    records = stored(".git/config", ".env", "out/.hidden", "out/x.txt", "docs/a.md")
    done = write_artifacts(tether.content_store(), records, tmp_path / "all")
    assert sorted(local_files(tmp_path / "all")) == ["docs/a.md", "out/x.txt"]
    reasons = {s.path: s.reason for s in done.skipped}
    assert sorted(reasons) == [".env", ".git/config", "out/.hidden"]
    assert all("dotfile" in reason and "glob" in reason for reason in reasons.values())

    # A wildcard is no explicit name: `**` and `*` pass over names that start with a dot.
    done = write_artifacts(tether.content_store(), records, tmp_path / "wild", globs=["**", "out/*"])
    assert sorted(local_files(tmp_path / "wild")) == ["docs/a.md", "out/x.txt"]

    done = write_artifacts(tether.content_store(), records, tmp_path / "named",
                           globs=[".git/*", "out/.hid*", "docs/**"])
    assert local_files(tmp_path / "named") == {
        ".git/config": b".git/config", "out/.hidden": b"out/.hidden", "docs/a.md": b"docs/a.md"}
    assert done.skipped == []  # what no glob asked for is not written, and not a problem either


def test_a_download_onto_an_existing_file_raises_and_writes_nothing(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.txt").write_text("mine\n")
    with pytest.raises(ArtifactExists) as refused:
        write_artifacts(tether.content_store(), stored("out/a.txt", "out/b.txt", "c/d.txt"), tmp_path)
    assert refused.value.path == "out/b.txt"
    assert local_files(tmp_path) == {"out/b.txt": b"mine\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_replaces_the_files_a_download_finds_in_its_way(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.txt").write_text("mine\n")
    done = write_artifacts(tether.content_store(), stored("out/a.txt", "out/b.txt"), tmp_path, overwrite=True)
    assert len(done.written) == 2
    assert local_files(tmp_path) == {"out/a.txt": b"out/a.txt", "out/b.txt": b"out/b.txt"}


async def test_the_cli_refuses_in_one_line_to_replace_a_file_unless_told_to_overwrite(
    temporal_client: Client, temporal_address: str, worker: str, tmp_path
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("write", turn(shell="mkdir out && echo a > out/a.txt && echo b > out/b.txt"),
                     turn("done"), artifacts=["out/**"]),
        task_queue=worker)
    assert (await handle.result()).status == "completed"
    target = tmp_path / "results"
    (target / "out").mkdir(parents=True)
    (target / "out" / "b.txt").write_text("mine\n")

    code, _, err = await cli(temporal_address, worker, "artifacts", handle.id, "--download", str(target))
    assert code != 0
    [line] = err.strip().splitlines()
    assert "out/b.txt" in line and "--overwrite" in line
    assert local_files(target) == {"out/b.txt": b"mine\n"}  # not even out/a.txt

    code, _, err = await cli(temporal_address, worker, "artifacts", handle.id, "--download", str(target),
                             "--overwrite")
    assert code == 0, err
    assert local_files(target) == {"out/a.txt": b"a\n", "out/b.txt": b"b\n"}


async def test_the_cli_writes_a_runs_dotfiles_only_when_a_glob_names_them(
    temporal_client: Client, temporal_address: str, worker: str, tmp_path
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("write", turn(shell="mkdir .git && echo '[core]' > .git/config && echo r > report.md"),
                     turn("done"), artifacts=["**"]),
        task_queue=worker)
    assert sorted(a.path for a in (await handle.result()).artifacts) == [".git/config", "report.md"]

    code, out, err = await cli(temporal_address, worker, "artifacts", handle.id,
                               "--download", str(tmp_path / "a"))
    assert code == 0, err
    assert local_files(tmp_path / "a") == {"report.md": b"r\n"}
    assert "not written .git/config" in out and "--glob" in out

    code, _, err = await cli(temporal_address, worker, "artifacts", handle.id,
                             "--download", str(tmp_path / "b"), "--glob", ".git/config")
    assert code == 0, err
    assert local_files(tmp_path / "b") == {".git/config": b"[core]\n"}


def test_a_download_of_an_altered_blob_writes_nothing_and_says_why(tmp_path):
    store = LocalContentStore(tmp_path / "store")
    digest = store.put(b"the real bytes\n")
    (tmp_path / "store" / digest[:2] / digest[2:]).write_bytes(b"other bytes, same size\n"[:15])
    record = ArtifactRecord(path="out/report.txt", size=15, sha256=digest)
    done = write_artifacts(store, [record], tmp_path / "got")
    assert done.written == []
    assert [(s.path, "does not hold the content its name says" in s.reason) for s in done.skipped] == [
        ("out/report.txt", True)]
    assert [p for p in (tmp_path / "got").rglob("*") if p.is_file()] == []
