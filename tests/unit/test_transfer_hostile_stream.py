"""What the host does with a tar stream a hostile sandbox sends back (`sandbox/transfer.py`):
the sandbox's end of a real transfer never sends these, so a socket pair plays the engine's
attached stream, frames and all, and the host's reader is held to its checks."""

from __future__ import annotations

import io
import json
import socket
import struct
import tarfile
import threading
from typing import IO

import pytest
from tether.sandbox import transfer
from tether.sandbox.transfer import Entry, TransferRefused

MiB = 1 << 20


def framed(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def receive(sent: bytes, *, paths: list[str] | None = None, max_bytes: int = MiB,
            handed: list[str] | None = None) -> None:
    """Runs the host's reader against a sandbox that answers with `sent` on stdout and an
    untroubled report; the paths handed to the receiver go to `handed`."""
    host, sandbox = socket.socketpair()
    report = {"ok": True, "entries": [], "skipped": []}

    def hostile_sandbox() -> None:
        sandbox.recv(65536)  # the request line
        for offset in range(0, len(sent), 32 << 10):
            sandbox.sendall(framed(1, sent[offset:offset + (32 << 10)]))
        sandbox.sendall(framed(2, json.dumps(report).encode() + b"\n"))
        sandbox.close()

    thread = threading.Thread(target=hostile_sandbox)
    thread.start()

    def keep(entry: Entry, data: IO[bytes] | None) -> None:
        if handed is not None:
            handed.append(entry.path)

    try:
        transfer._receive_members(transfer._Exec(None, "", host, None),  # type: ignore[arg-type]
                                  keep, paths, max_bytes, 100)
    finally:
        thread.join(5)


@pytest.mark.parametrize("hostile", [
    member("../escaped"),
    member("/etc/cron.d/x"),
    member("back\\slash"),
    member("up", tarfile.SYMTYPE, target="../../etc"),
    member("abs", tarfile.SYMTYPE, target="/etc/passwd"),
    member("null", tarfile.CHRTYPE),
    member("hard", tarfile.LNKTYPE, target="fine.txt"),
], ids=["dot-dot", "absolute", "backslash", "link-out", "absolute-link", "device", "hard-link"])
def test_a_hostile_member_from_the_sandbox_is_refused_and_not_handed_on(hostile: tarfile.TarInfo):
    handed: list[str] = []
    with pytest.raises(TransferRefused, match="the sandbox sent"):
        receive(tar_of((member("fine.txt"), b"ok"), (hostile, b"x")), handed=handed)
    assert handed == ["fine.txt"]  # what came before it; the hostile one never


def test_a_member_nobody_asked_for_is_refused():
    with pytest.raises(TransferRefused, match="not asked for"):
        receive(tar_of((member("asked.txt"), b"a"), (member("other.txt"), b"b")), paths=["asked.txt"])


def test_files_past_the_streams_bound_are_refused():
    with pytest.raises(TransferRefused, match="1000-byte bound"):
        receive(tar_of((member("a.bin"), b"x" * 600), (member("b.bin"), b"y" * 600)), max_bytes=1000)


def test_an_extended_header_claiming_a_huge_length_is_refused_before_it_is_read():
    header = member("pax-header")
    header.type, header.size = tarfile.XHDTYPE, 1 << 30
    huge = header.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict") + bytes(4096)
    with pytest.raises(TransferRefused, match="broken stream: an extended header of 1073741824 bytes"):
        receive(huge)
