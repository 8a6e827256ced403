"""Tar streams into and out of a running sandbox's workspace (`sandbox/transfer.py`), under
runc and gVisor: what goes in comes out with the same digest and the tools' ownership, and
a hostile tar or a hostile workspace writes nothing outside and hands nothing out."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import IO

import pytest
from tether.contracts import SandboxSpec
from tether.sandbox.hardening import SANDBOX_UID
from tether.sandbox.transfer import (
    Entry,
    Incoming,
    TransferRefused,
    stream_into,
    stream_out,
    stream_tar_into,
)

from tests.helpers import sandboxes
from tests.sandbox.attacks import RUNTIMES, require
from tests.sandbox.direct import call, direct_labels

MiB = 1 << 20


@pytest.fixture(params=RUNTIMES)
async def roomy(request: pytest.FixtureRequest, docker_engine) -> AsyncIterator[str]:
    """A sandbox with room for 64 MiB and more, under each runtime."""
    spec = SandboxSpec(memory_mb=256, pids=64, disk_mb=160, runtime=require(request.param))
    container = await asyncio.to_thread(
        sandboxes().create, spec, direct_labels(), name=f"tether-test-{uuid.uuid4().hex[:12]}")
    yield container.id
    await asyncio.to_thread(sandboxes().remove, container.id)


def chunks(data: bytes) -> Iterator[bytes]:
    for offset in range(0, len(data), MiB):
        yield data[offset:offset + MiB]


def collect(into: dict[str, str]):
    def keep(entry: Entry, data: IO[bytes] | None) -> None:
        if data is not None:
            digest = hashlib.sha256()
            while chunk := data.read(MiB):
                digest.update(chunk)
            into[entry.path] = digest.hexdigest()
    return keep


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> list[bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return [buffer.getvalue()]


def member(name: str, kind: bytes = tarfile.REGTYPE, *, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o644
    return info


async def test_a_64_mib_file_streamed_in_comes_back_out_with_its_digest(roomy: str):
    data = os.urandom(64 * MiB)
    placed = await stream_into(sandboxes(), roomy, "in", [
        Incoming("big.bin", size=len(data), data=chunks(data), mode=0o755)], max_bytes=100 * MiB)
    assert placed.entries[0].sha256 == hashlib.sha256(data).hexdigest()
    got: dict[str, str] = {}
    out = await stream_out(sandboxes(), roomy, "in", collect(got), max_bytes=100 * MiB)
    assert got == {"big.bin": hashlib.sha256(data).hexdigest()}
    assert [(e.path, e.kind, e.size, e.mode) for e in out.entries] == [("big.bin", "file", 64 * MiB, 0o755)]


async def test_what_is_streamed_in_belongs_to_the_tools_uid(roomy: str):
    await stream_into(sandboxes(), roomy, ".", [
        Incoming("d/e", kind="dir", mode=0o700), Incoming("d/e/f.txt", size=2, data=[b"hi"])],
        max_bytes=MiB)
    # Python's stat, not coreutils': gVisor's answers statx with EINVAL.
    owners = await call(roomy, "import os\nfor p in ('d', 'd/e', 'd/e/f.txt'):\n"
                               "    s = os.stat(p); print(s.st_uid, oct(s.st_mode & 0o777), p)",
                        tool="python")
    assert owners.stdout.splitlines() == [f"{SANDBOX_UID} 0o755 d", f"{SANDBOX_UID} 0o700 d/e",
                                          f"{SANDBOX_UID} 0o644 d/e/f.txt"]


async def test_links_inside_and_empty_directories_cross_both_ways(roomy: str):
    await stream_into(sandboxes(), roomy, "snap", [
        Incoming("empty", kind="dir", mode=0o755), Incoming("a.txt", size=1, data=[b"a"]),
        Incoming("sub/to-a", kind="symlink", target="../a.txt")], max_bytes=MiB)
    out = await stream_out(sandboxes(), roomy, "snap", lambda entry, data: None, max_bytes=MiB)
    assert sorted((e.path, e.kind, e.target) for e in out.entries) == [
        ("a.txt", "file", ""), ("empty", "dir", ""), ("sub", "dir", ""), ("sub/to-a", "symlink", "../a.txt")]


@pytest.mark.parametrize("hostile", [
    member("../escaped"),
    member("/tmp/escaped"),
    member("up", tarfile.SYMTYPE, target="../../tmp"),
    member("abs", tarfile.SYMTYPE, target="/tmp"),
    member("null", tarfile.CHRTYPE),
    member("hard", tarfile.LNKTYPE, target="/etc/passwd"),
], ids=["dot-dot", "absolute", "link-out", "absolute-link", "device", "hard-link"])
async def test_a_hostile_member_is_refused_and_nothing_is_written_outside(sandbox: str,
                                                                           hostile: tarfile.TarInfo):
    tar = tar_of((member("fine.txt"), b"ok"), (hostile, b"x"), (member("up/escaped"), b"x"))
    with pytest.raises(TransferRefused, match="refused the stream"):
        await stream_tar_into(sandboxes(), sandbox, "sub", tar, max_bytes=MiB)
    found = await call(sandbox, "ls -a /tmp /workspace; find /workspace -name escaped")
    assert "escaped" not in found.stdout and "up" not in found.stdout.split()
    assert found.stdout.split() == ["/tmp:", ".", "..", "/workspace:", ".", "..", "sub"]


async def test_a_member_through_a_link_a_tool_made_is_refused(sandbox: str):
    made = await call(sandbox, "ln -s /tmp out")
    assert made.exit_code == 0
    with pytest.raises(TransferRefused):
        await stream_tar_into(sandboxes(), sandbox, ".", tar_of((member("out/escaped"), b"x")),
                              max_bytes=MiB)
    assert (await call(sandbox, "ls /tmp")).stdout == ""


async def test_a_tar_claiming_more_than_its_bound_is_refused_by_the_sandbox(sandbox: str):
    tar = tar_of((member("a.bin"), b"x" * 600), (member("b.bin"), b"y" * 600))
    with pytest.raises(TransferRefused, match="1000-byte bound"):
        await stream_tar_into(sandboxes(), sandbox, ".", tar, max_bytes=1000)


async def test_files_over_the_bound_are_refused_before_they_are_sent(sandbox: str):
    with pytest.raises(TransferRefused, match="bound"):
        await stream_into(sandboxes(), sandbox, ".", [Incoming("a", size=11, data=[b"x" * 11])],
                          max_bytes=10)


async def test_a_source_shorter_than_its_size_is_refused(sandbox: str):
    with pytest.raises(TransferRefused, match="before its size"):
        await stream_into(sandboxes(), sandbox, ".", [Incoming("a", size=10, data=[b"x" * 4])],
                          max_bytes=MiB)


async def test_out_skips_what_a_tool_left_that_is_no_plain_file_and_says_why(sandbox: str):
    made = await call(sandbox, "echo s > f && ln f hard && ln -s /etc/passwd out && mkfifo pipe"
                               " && ln -s f in")
    assert made.exit_code == 0, made.stderr
    got: dict[str, str] = {}
    out = await stream_out(sandboxes(), sandbox, ".", collect(got), max_bytes=MiB)
    assert sorted(e.path for e in out.entries) == ["in"]
    reasons = dict(out.skipped)
    assert sorted(reasons) == ["f", "hard", "out", "pipe"]
    assert "hard link" in reasons["f"] and "out of the directory" in reasons["out"]
    assert got == {}


async def test_out_of_named_paths_takes_only_those(sandbox: str):
    made = await call(sandbox, "mkdir d && echo one > d/1 && echo two > d/2")
    assert made.exit_code == 0
    got: dict[str, str] = {}
    out = await stream_out(sandboxes(), sandbox, ".", collect(got), max_bytes=MiB,
                           paths=["d/2", "missing"])
    assert got == {"d/2": hashlib.sha256(b"two\n").hexdigest()}
    assert [path for path, _ in out.skipped] == ["missing"]


async def test_out_refuses_a_workspace_over_its_bound(sandbox: str):
    made = await call(sandbox, "head -c 3000 /dev/zero > big")
    assert made.exit_code == 0
    with pytest.raises(TransferRefused, match="2000-byte bound"):
        await stream_out(sandboxes(), sandbox, ".", collect({}), max_bytes=2000)


async def test_a_file_whose_bytes_are_not_its_given_digest_is_refused(sandbox: str):
    claimed = hashlib.sha256(b"the real bytes").hexdigest()
    with pytest.raises(TransferRefused, match="arrived with another digest"):
        await stream_into(sandboxes(), sandbox, ".", [
            Incoming("a.txt", size=11, data=[b"other bytes"], sha256=claimed)], max_bytes=MiB)
