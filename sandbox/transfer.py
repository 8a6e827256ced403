"""Tar streams into and out of a running sandbox's /workspace, at disk speed.

The engine's archive API (`put_archive`, `get_archive`: what `docker cp` uses) can't reach the
workspace: the engine refuses to write a read-only root, and reads the image's empty
/workspace beneath the tmpfs. So a `docker exec` of `tar_in_sandbox.py` (python3, standard
library only, sent with the command) runs as the tools' uid and unpacks or packs the tar,
which crosses the exec's attached stream as raw bytes: no JSON, no base64.

Both ends check. The sandbox side refuses any member that is not a plain name beneath the
directory, or not a regular file, a directory or a link that stays inside, and counts bytes;
it reports the sha256 of every file it wrote or read. The host side sends only names
`name_problem` accepts, counts every byte it sends or reads against the caller's bound,
parses what comes out with bounded headers, and holds each file's digest to the report.
Whatever the stream or the report gets wrong raises `TransferRefused` with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import socket
import struct
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from docker.errors import APIError, NotFound
from tether.contracts.files import name_problem
from tether.sandbox.hardening import SANDBOX_UID
from tether.sandbox.manager import SandboxGone, SandboxManager
from tether.sandbox.tar_in_sandbox import Refused, TarReader, header

Kind = Literal["file", "dir", "symlink"]
CHUNK_BYTES = 1 << 20
MAX_ENTRIES = 100_000
"""Members one stream may carry (a default workspace holds 32,768 files)."""
MAX_HEADER_BYTES = 64 << 10
"""The longest extended header (a long name or link target) the host parses."""
MAX_REPORT_BYTES = 64 << 20
IDLE_TIMEOUT_S = 60.0
"""A stream that moves no byte for this long is taken as lost."""
_FRAME = struct.Struct(">BxxxI")
_SCRIPT = (Path(__file__).with_name("tar_in_sandbox.py")).read_text()


class TransferRefused(RuntimeError):
    """The sandbox refused the stream (a name, a kind of entry, a bound, a full workspace), or
    sent what its side never would: the message says which."""


@dataclass(frozen=True)
class Incoming:
    """One member of a stream into a sandbox."""

    path: str
    """Relative to the directory, `/`-separated: `name_problem` must accept it."""
    kind: Kind = "file"
    size: int = 0
    """A file's exact length: its `data` must yield that many bytes."""
    data: Iterable[bytes] = ()
    """A file's bytes, read once while the member is sent (a generator stays lazy)."""
    mode: int = 0o644
    target: str = ""
    """A link's target, relative, staying inside the directory."""
    sha256: str = ""
    """A file's digest when its source already checks its bytes against it (a content
    store's read does): the sandbox's report is held to it, and the bytes are not hashed
    again on this side."""


@dataclass(frozen=True)
class Entry:
    """One member as it crossed: `sha256` for files (checked against the sandbox's report),
    `target` for links."""

    path: str
    kind: Kind
    size: int = 0
    mode: int = 0o644
    sha256: str = ""
    target: str = ""


@dataclass
class Transferred:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of entries the sandbox would not send: devices, hard links, links
    that lead out, files that changed while read, paths that are not there."""


async def stream_into(sandboxes: SandboxManager, container_id: str, directory: str,
                      members: Iterable[Incoming], *, max_bytes: int,
                      started_at: str | None = None, max_entries: int = MAX_ENTRIES) -> Transferred:
    """Unpacks `members` beneath /workspace/`directory` (`"."` for the workspace itself;
    made if missing) of the running sandbox, owned by the tools' uid.

        placed = await stream_into(manager, container_id, ".", [
            Incoming("data/a.csv", size=n, data=chunks_of_a),
            Incoming("data", kind="dir", mode=0o755),
            Incoming("latest", kind="symlink", target="data/a.csv"),
        ], max_bytes=disk_mb << 20)

    Files' sizes together may not pass `max_bytes`; each file's `data` must yield exactly
    its `size`. Returns the entries as the sandbox wrote them, each file's digest the one
    the host sent. Raises TransferRefused (what was refused and why; entries written before
    it stay), SandboxGone when the container is gone or was restarted since `started_at`.
    Parents are made as needed; an existing file or link at a member's name is replaced.
    """
    exec_socket = await asyncio.to_thread(
        _start, sandboxes, container_id, started_at, ["in", directory, str(max_bytes), str(max_entries)])
    return await asyncio.to_thread(_send_members, exec_socket, members, max_bytes, max_entries)


async def stream_tar_into(sandboxes: SandboxManager, container_id: str, directory: str,
                          tar: Iterable[bytes], *, max_bytes: int, started_at: str | None = None,
                          max_entries: int = MAX_ENTRIES) -> Transferred:
    """Unpacks a tar built elsewhere, given as chunks of its bytes, as `stream_into` does:
    the sandbox's end checks every member (names, kinds, links, sizes), trusting nothing the
    tar says. Returns the entries as the sandbox reports writing them; raises as
    `stream_into` does."""
    exec_socket = await asyncio.to_thread(
        _start, sandboxes, container_id, started_at, ["in", directory, str(max_bytes), str(max_entries)])
    return await asyncio.to_thread(_send_raw, exec_socket, tar)


async def stream_out(sandboxes: SandboxManager, container_id: str, directory: str,
                     on_entry: Callable[[Entry, IO[bytes] | None], None], *, max_bytes: int,
                     paths: list[str] | None = None, started_at: str | None = None,
                     max_entries: int = MAX_ENTRIES) -> Transferred:
    """Packs /workspace/`directory` of the running sandbox (or only `paths` in it, regular
    files) and hands each member to `on_entry`, in a worker thread, as it arrives:

        def keep(entry: Entry, data: IO[bytes] | None) -> None:
            if data is not None:           # a file: read up to entry.size bytes
                digests[entry.path] = blobs.put_stream(data)
        got = await stream_out(manager, container_id, ".", keep, max_bytes=1 << 30)

    `data` is None for directories and links (`entry.target`); what `on_entry` leaves unread
    is skipped. Directories come before what they hold. Files' sizes together may not pass
    `max_bytes`. Returns the entries whose bytes matched the sandbox's report and what it
    skipped, with why: a file that changed while read is skipped, though `on_entry` saw it.
    Raises TransferRefused (a name, a kind, a bound, a digest the report contradicts),
    SandboxGone as `stream_into` does.
    """
    exec_socket = await asyncio.to_thread(_start, sandboxes, container_id, started_at, ["out", directory])
    return await asyncio.to_thread(_receive_members, exec_socket, on_entry, paths, max_bytes, max_entries)


@dataclass
class _Exec:
    sandboxes: SandboxManager
    exec_id: str
    sock: socket.socket
    keepalive: Any


def _start(sandboxes: SandboxManager, container_id: str, started_at: str | None,
           arguments: list[str]) -> _Exec:
    if started_at is not None:
        sandboxes.find(container_id, started_at)
    api = sandboxes.engine.api
    try:
        exec_id = api.exec_create(
            container_id, ["python3", "-I", "-S", "-c", _SCRIPT, *arguments], stdin=True,
            stdout=True, stderr=True, user=f"{SANDBOX_UID}:{SANDBOX_UID}", workdir="/")["Id"]
        raw = api.exec_start(exec_id, socket=True)
    except NotFound:
        raise SandboxGone(f"sandbox {container_id[:12]} no longer exists") from None
    except APIError as error:
        if error.status_code == 409:
            raise SandboxGone(f"sandbox {container_id[:12]} is not running") from None
        raise
    sock: socket.socket = getattr(raw, "_sock", raw)
    sock.settimeout(IDLE_TIMEOUT_S)
    return _Exec(sandboxes, exec_id, sock, raw)


class _Frames(io.RawIOBase):
    """The exec's output, demultiplexed: stdout as a raw file to read (at most `limit`
    bytes), stderr kept aside up to MAX_REPORT_BYTES for the report."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        super().__init__()
        self.sock = sock
        self.limit = limit
        self.read_bytes = 0
        self.stderr = bytearray()
        self._pending = memoryview(b"")
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self.ended:
            self._next_frame()
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def drain(self) -> None:
        while not self.ended:
            self._pending = memoryview(b"")
            self._next_frame()

    def _next_frame(self) -> None:
        header = self._exact(_FRAME.size, allow_end=True)
        if header is None:
            self.ended = True
            return
        stream, size = _FRAME.unpack(header)
        if stream == 2:
            if len(self.stderr) + size > MAX_REPORT_BYTES:
                raise TransferRefused(f"the sandbox's report passed {MAX_REPORT_BYTES} bytes")
            self.stderr += self._exact(size) or b""
            return
        self.read_bytes += size
        if self.read_bytes > self.limit:
            raise TransferRefused(f"the sandbox sent over the stream's {self.limit}-byte bound")
        self._pending = memoryview(self._exact(size) or b"")

    def _exact(self, size: int, *, allow_end: bool = False) -> bytes | None:
        chunks, remaining = [], size
        while remaining:
            try:
                chunk = self.sock.recv(min(remaining, CHUNK_BYTES))
            except TimeoutError:
                raise TransferRefused(f"the sandbox's stream was silent for {IDLE_TIMEOUT_S:g} s") from None
            if not chunk:
                if allow_end and remaining == size:
                    return None
                raise TransferRefused("the sandbox's stream ended inside a frame")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def report(self) -> dict[str, Any]:
        lines = bytes(self.stderr).strip().splitlines()
        try:
            found = json.loads(lines[-1]) if lines else None
        except ValueError:
            found = None
        if not isinstance(found, dict) or not isinstance(found.get("ok"), bool):
            raise TransferRefused("the sandbox's end of the stream gave no report"
                                  f" ({bytes(self.stderr[-300:]).decode('utf-8', 'replace').strip()!r})")
        return found


class _Sink:
    """What tarfile writes to: the exec's stdin."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)


def _send_members(run: _Exec, members: Iterable[Incoming], max_bytes: int,
                  max_entries: int) -> Transferred:
    def write(sink: _Sink) -> list[Entry]:
        sent: list[Entry] = []
        total = 0
        for member in members:
            problem = name_problem(member.path)
            if problem:
                raise TransferRefused(problem)
            if len(sent) >= max_entries:
                raise TransferRefused(f"more than {max_entries} entries")
            info = tarfile.TarInfo(member.path)
            info.mode = member.mode
            if member.kind == "file":
                total += member.size
                if total > max_bytes:
                    raise TransferRefused(
                        f"{member.path!r} takes the stream over its {max_bytes}-byte bound")
                info.size = member.size
                sink.write(header(info))
                digest = _send_body(sink, member)
                sent.append(Entry(member.path, "file", member.size, member.mode, digest))
            else:
                info.type = tarfile.DIRTYPE if member.kind == "dir" else tarfile.SYMTYPE
                info.linkname = member.target
                sink.write(header(info))
                mode = member.mode if member.kind == "dir" else 0o777
                sent.append(Entry(member.path, member.kind, 0, mode, target=member.target))
        sink.write(bytes(2 * tarfile.BLOCKSIZE))
        return sent

    sent, report = _send(run, write)
    _match(sent, report)
    return Transferred(entries=sent)


def _send_body(sink: _Sink, member: Incoming) -> str:
    """The file's bytes as its source yields them, exactly `size`, and their padding; its
    source is read to its end, so one that checks its digest there does."""
    digest, sent = None if member.sha256 else hashlib.sha256(), 0
    for chunk in member.data:
        sent += len(chunk)
        if sent > member.size:
            raise TransferRefused(f"{member.path!r} holds more bytes than its size")
        if digest is not None:
            digest.update(chunk)
        sink.write(chunk)
    if sent < member.size:
        raise TransferRefused(f"{member.path!r} ended {member.size - sent} bytes before its size")
    sink.write(bytes(-member.size % tarfile.BLOCKSIZE))
    return member.sha256 if digest is None else digest.hexdigest()


def _send_raw(run: _Exec, tar: Iterable[bytes]) -> Transferred:
    def write(sink: _Sink) -> list[Entry]:
        for chunk in tar:
            sink.write(chunk)
        return []

    _, report = _send(run, write)
    return Transferred(entries=[_reported(e) for e in report.get("entries", []) if isinstance(e, dict)])


def _reported(entry: dict[str, Any]) -> Entry:
    kind = entry.get("kind")
    return Entry(str(entry.get("path")), kind if kind in ("file", "dir", "symlink") else "file",
                 int(entry.get("size") or 0), int(entry.get("mode") or 0), str(entry.get("sha256") or ""),
                 str(entry.get("target") or ""))


def _send(run: _Exec, write: Callable[[_Sink], list[Entry]]) -> tuple[list[Entry], dict[str, Any]]:
    """Runs `write` into the exec's stdin while its output is read, and returns what it
    wrote with the sandbox's report (refusals raised)."""
    frames = _Frames(run.sock, limit=0)
    reader_error: list[BaseException] = []

    def read_output() -> None:
        try:
            frames.drain()
        except BaseException as error:
            reader_error.append(error)

    # The sandbox's report may come while the host still sends (a refused member): read it
    # alongside, or both ends could wait on full buffers.
    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    sent: list[Entry] = []
    try:
        sent = write(_Sink(run.sock))
    except ConnectionError:
        pass  # the sandbox's end stopped reading: its report says why
    except BaseException:
        # A half-sent member (refused here, or its source failed): the sandbox's end is
        # left with a truncated stream, which it refuses. Shut down, not only closed: that
        # wakes the reader, blocked in recv.
        _close(run.sock)
        reader.join(IDLE_TIMEOUT_S)
        raise
    _shutdown_write(run.sock)
    reader.join(IDLE_TIMEOUT_S + 5)
    run.sock.close()
    if reader_error:
        raise TransferRefused(str(reader_error[0]))
    report = frames.report()
    if not report["ok"]:
        raise TransferRefused(f"the sandbox refused the stream: {report.get('error')}")
    return sent, report


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _shutdown_write(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _match(entries: list[Entry], report: dict[str, Any]) -> None:
    """Each file's digest on this side must be the one the sandbox's side reports."""
    reported = {str(e.get("path")): e for e in report.get("entries", []) if isinstance(e, dict)}
    for entry in entries:
        other = reported.get(entry.path)
        if other is None or other.get("kind") != entry.kind:
            raise TransferRefused(f"the sandbox's report leaves out {entry.path!r}")
        if entry.kind == "file" and other.get("sha256") != entry.sha256:
            raise TransferRefused(f"{entry.path!r} arrived with another digest than was sent"
                                  f" ({str(other.get('sha256'))[:12]} for {entry.sha256[:12]})")


def _receive_members(run: _Exec, on_entry: Callable[[Entry, IO[bytes] | None], None],
                     paths: list[str] | None, max_bytes: int, max_entries: int) -> Transferred:
    limit = max_bytes + (max_entries + 4) * (2 * MAX_HEADER_BYTES)
    frames = _Frames(run.sock, limit)
    broken: str | None = None
    try:
        run.sock.sendall(json.dumps({"paths": paths, "max_bytes": max_bytes}).encode() + b"\n")
        _shutdown_write(run.sock)
        try:
            received = _read_tar(frames, on_entry, paths, max_bytes, max_entries)
        except (tarfile.TarError, OSError, Refused) as error:
            # A sandbox that refuses stops its tar short: its report says why, after it.
            broken = str(error)
        frames.drain()
    except OSError as error:
        raise TransferRefused(f"the sandbox's stream broke: {error}") from None
    finally:
        _close(run.sock)
    report = frames.report()
    if not report["ok"]:
        raise TransferRefused(f"the sandbox refused to send: {report.get('error')}")
    if broken is not None:
        raise TransferRefused(f"the sandbox sent a broken stream: {broken}")
    changed = {str(e.get("path")) for e in report.get("entries", [])
               if isinstance(e, dict) and e.get("changed")}
    _match([e for e in received if e.path not in changed], report)
    skipped = [(str(s.get("path"))[:1024], str(s.get("reason"))[:1024])
               for s in report.get("skipped", [])[:max_entries] if isinstance(s, dict)]
    skipped += [(path, "changed while it was read") for path in sorted(changed)]
    return Transferred(entries=[e for e in received if e.path not in changed], skipped=skipped)


def _read_tar(frames: _Frames, on_entry: Callable[[Entry, IO[bytes] | None], None],
              paths: list[str] | None, max_bytes: int, max_entries: int) -> list[Entry]:
    """The members as they come, each held to the checks before it is handed on; the
    blocks are read with the sandbox end's own reader (extended headers bounded)."""
    wanted = None if paths is None else set(paths)
    seen: set[str] = set()
    received: list[Entry] = []
    total = 0
    reader = TarReader(io.BufferedReader(frames, CHUNK_BYTES))
    for member in reader.members():
        name = member.name
        problem = name_problem(name, what="member name")
        if problem:
            raise TransferRefused(f"the sandbox sent {problem}")
        if name in seen or (wanted is not None and name not in wanted):
            raise TransferRefused(f"the sandbox sent {name!r}, which was not asked for")
        seen.add(name)
        if len(received) >= max_entries:
            raise TransferRefused(f"the sandbox sent more than {max_entries} entries")
        mode = member.mode & 0o7777
        if member.kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
            total += member.size
            if total > max_bytes:
                raise TransferRefused(f"{name!r} takes the stream over its {max_bytes}-byte bound")
            body = reader.body(member.size)
            on_entry(Entry(name, "file", member.size, mode), body)  # type: ignore[arg-type]
            received.append(Entry(name, "file", member.size, mode, body.finish()))
        elif member.kind in (tarfile.DIRTYPE, tarfile.SYMTYPE):
            kind: Kind = "dir" if member.kind == tarfile.DIRTYPE else "symlink"
            if kind == "symlink" and not _stays_inside(name, member.target):
                raise TransferRefused(
                    f"the sandbox sent a link {name!r} -> {member.target!r} that leads out")
            reader.copy_body(member.size, None)
            entry = Entry(name, kind, 0, mode, target=member.target if kind == "symlink" else "")
            on_entry(entry, None)
            received.append(entry)
        else:
            raise TransferRefused(
                f"the sandbox sent {name!r}, which is not a file, a directory or a link")
    return received


def _stays_inside(name: str, target: str) -> bool:
    if not target or target.startswith("/") or "\\" in target:
        return False
    depth = name.count("/")
    for part in target.split("/"):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return False
    return True
