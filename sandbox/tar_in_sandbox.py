"""Runs inside a sandbox, never on the host: the far end of `sandbox/transfer.py`.

Its source is sent as `python3 -I -S -c` to a `docker exec` as the tools' uid, so it needs
nothing in the image but python3 (standard library only, 3.11 and up), writes files the
tools own, and can do nothing a tool could not. Two commands, both beneath
/workspace/DIRECTORY, whose every component is opened without following links:

`in DIRECTORY MAX_BYTES MAX_ENTRIES`: unpacks the tar on stdin. Tar member names are never
trusted: each is checked (relative, no `.`/`..`/empty part, no backslash or control
character), every parent is opened with O_NOFOLLOW, and only regular files, directories and
symbolic links that stay inside are made; anything else (a hard link, a device, a fifo)
refuses the stream. Modes lose setuid, setgid, sticky and group/other write bits.

`out DIRECTORY`: reads one JSON line on stdin, `{"paths": [...] | null, "max_bytes": N}`, and
writes to stdout a tar of those paths, or of the whole directory (its directories, regular
files and links, walked without following links). Entries it won't take are reported.

Either way the last line on stderr is a JSON report: `ok`, `error`, `entries` (path, kind,
size, mode, sha256 of each file, target of each link) and `skipped` (path, reason).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
import sys
import tarfile
from collections.abc import Iterator
from typing import IO, Any

WORKSPACE = "/workspace"
CHUNK = 1 << 20
F_SETPIPE_SZ = 1031
BLOCK = tarfile.BLOCKSIZE
NUL_BLOCK = bytes(BLOCK)
MAX_HEADER = 64 << 10
UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


class Refused(Exception):
    """The stream holds what may not be written, or more than the bounds allow."""


def parts_of(name: str) -> list[str]:
    if name.endswith("/"):
        name = name[:-1]
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(f"member name {name!r} is not UTF-8") from None
    parts = name.split("/")
    if not name or name.startswith("/") or UNSAFE.search(name) or any(
            p in ("", ".", "..") for p in parts):
        raise Refused(f"member {name!r} is not a name inside the directory")
    return parts


def open_dir(root: int, parts: list[str], *, make: bool) -> int:
    """The directory `parts` names beneath `root`, no link followed (made when `make`)."""
    directory = os.dup(root)
    try:
        for part in parts:
            if make:
                try:
                    os.mkdir(part, 0o755, dir_fd=directory)
                except FileExistsError:
                    pass
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        return directory
    except BaseException:
        os.close(directory)
        raise


def open_root(directory: str, *, make: bool) -> int:
    parts = [] if directory in ("", ".") else parts_of(directory)
    top = os.open(WORKSPACE, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return open_dir(top, parts, make=make)
    finally:
        os.close(top)


def link_stays_inside(path: list[str], target: str) -> bool:
    """A link's target, read from where the link is, must name a place beneath the root."""
    if not target or target.startswith("/") or UNSAFE.search(target):
        return False
    depth = len(path) - 1
    for part in target.split("/"):
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            return False
    return True


def report(**fields: Any) -> None:
    sys.stderr.write("\n" + json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stderr.flush()


class Member:
    """One member's header, as the stream gives it: nothing in it is trusted yet."""

    def __init__(self, name: str, kind: bytes, size: int, mode: int, target: str) -> None:
        self.name, self.kind, self.size, self.mode, self.target = name, kind, size, mode, target


class TarReader:
    """Reads a tar stream's headers and bodies in blocks, with one copy of each body byte
    (tarfile's stream mode copies every byte three times over). Headers are parsed by
    tarfile's own TarInfo.frombuf; extended (pax, GNU long name) headers are bounded, and
    members of any other kind come out as such, for the caller to refuse."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.buffer = bytearray(CHUNK)

    def exact(self, size: int) -> bytes:
        data = self.source.read(size)
        if len(data) != size:
            raise Refused("the stream ends inside a member")
        return data

    def members(self) -> Iterator[Member]:
        extended: dict[str, str] = {}
        while True:
            block = self.source.read(BLOCK)
            if not block or block == NUL_BLOCK:
                return
            if len(block) != BLOCK:
                raise Refused("the stream ends inside a header")
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            if info.type in (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
                if info.size > MAX_HEADER:
                    raise Refused(f"an extended header of {info.size} bytes")
                body = self.exact(info.size + (-info.size % BLOCK))[:info.size]
                if info.type == tarfile.XHDTYPE:
                    extended.update(pax_records(body))
                else:
                    key = "path" if info.type == tarfile.GNUTYPE_LONGNAME else "linkpath"
                    extended[key] = body.rstrip(b"\0").decode("utf-8", "surrogateescape")
                continue
            if any(key.startswith("GNU.sparse") for key in extended):
                raise Refused(f"member {info.name!r} is sparse")
            size = int(extended.get("size", info.size))
            yield Member(extended.get("path", info.name).rstrip("/"), info.type, size, info.mode,
                         extended.get("linkpath", info.linkname))
            extended = {}

    def body(self, size: int) -> Body:
        """The next member's body as a file to read, for a receiver that takes it as it comes."""
        return Body(self, size)

    def copy_body(self, size: int, out: int | None) -> str:
        """Reads a member's body (and its padding) into `out`; returns its sha256."""
        digest = hashlib.sha256()
        view = memoryview(self.buffer)
        remaining = size
        while remaining:
            got = self.source.readinto(view[:min(CHUNK, remaining)])  # type: ignore[attr-defined]
            if not got:
                raise Refused("the stream ends inside a member")
            digest.update(view[:got])
            if out is not None:
                write_all(out, view[:got])
            remaining -= got
        self.exact(-size % BLOCK)
        return digest.hexdigest()


class Body:
    """A member's bytes as its receiver reads them, hashed; `finish` reads (and hashes) what
    it left, and the padding after."""

    def __init__(self, reader: TarReader, size: int) -> None:
        self.reader, self.size, self.left = reader, size, size
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        wanted = self.left if size < 0 else min(size, self.left)
        if not wanted:
            return b""
        data = self.reader.exact(wanted)
        self.left -= wanted
        self.digest.update(data)
        return data

    def readable(self) -> bool:
        return True

    def finish(self) -> str:
        while self.read(CHUNK):
            pass
        self.reader.exact(-self.size % BLOCK)
        return self.digest.hexdigest()


def pax_records(body: bytes) -> dict[str, str]:
    """`<length> <key>=<value>\\n` records; any that does not parse refuses the stream."""
    records, offset = {}, 0
    while offset < len(body):
        space = body.find(b" ", offset)
        length = int(body[offset:space]) if space > offset else 0
        record = body[space + 1:offset + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise Refused("an extended header that does not parse")
        key, value = record[:-1].split(b"=", 1)
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        offset += length
    return records


def write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def unpack(directory: str, max_bytes: int, max_entries: int) -> list[dict[str, Any]]:
    root = open_root(directory, make=True)
    entries: list[dict[str, Any]] = []
    total = 0
    reader = TarReader(sys.stdin.buffer)
    for member in reader.members():
        if len(entries) >= max_entries:
            raise Refused(f"more than {max_entries} entries")
        parts = parts_of(member.name)
        name = "/".join(parts)
        if member.kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
            if member.size < 0 or total + member.size > max_bytes:
                raise Refused(f"{name!r} would take the stream over its {max_bytes}-byte bound")
            total += member.size
            mode = (member.mode & 0o755) | 0o600
            digest = write_file(root, parts, reader, member.size, mode)
            entries.append({"path": name, "kind": "file", "size": member.size, "mode": mode,
                            "sha256": digest})
        elif member.kind == tarfile.DIRTYPE:
            mode = (member.mode & 0o755) | 0o700
            reader.copy_body(member.size, None)
            made = open_dir(root, parts, make=True)
            try:
                os.fchmod(made, mode)
            finally:
                os.close(made)
            entries.append({"path": name, "kind": "dir", "size": 0, "mode": mode})
        elif member.kind == tarfile.SYMTYPE:
            if not link_stays_inside(parts, member.target):
                raise Refused(f"link {name!r} -> {member.target!r} leads out of the directory")
            reader.copy_body(member.size, None)
            make_link(root, parts, member.target)
            entries.append({"path": name, "kind": "symlink", "size": 0, "mode": 0o777,
                            "target": member.target})
        else:
            raise Refused(f"member {name!r} is not a file, a directory or a link"
                          " (hard links, devices and fifos are refused)")
    return entries


def write_file(root: int, parts: list[str], reader: TarReader, size: int, mode: int) -> str:
    """Written under a new name and renamed into place, so whatever was at the name (a link,
    a file with other names) is replaced, never written through."""
    parent = open_dir(root, parts[:-1], make=True)
    temporary = f".tether-in-{os.urandom(6).hex()}"
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                     dir_fd=parent)
        try:
            digest = reader.copy_body(size, fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(temporary, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        return digest
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=parent)
        except OSError:
            pass
        raise
    finally:
        os.close(parent)


def make_link(root: int, parts: list[str], target: str) -> None:
    parent = open_dir(root, parts[:-1], make=True)
    try:
        try:
            os.symlink(target, parts[-1], dir_fd=parent)
        except FileExistsError:
            if stat.S_ISDIR(os.stat(parts[-1], dir_fd=parent, follow_symlinks=False).st_mode):
                raise Refused(f"link {'/'.join(parts)!r} would replace a directory") from None
            os.unlink(parts[-1], dir_fd=parent)
            os.symlink(target, parts[-1], dir_fd=parent)
    finally:
        os.close(parent)


def header(member: tarfile.TarInfo) -> bytes:
    """A member's header block(s): a pax header first when its name or target needs one."""
    return member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def send_body(out: int, source: int, size: int, buffer: bytearray) -> tuple[str, bool]:
    """`size` bytes of `source` and their padding, hashed as sent. A file that shrank since
    its header was written is padded with zeros, so the stream stays whole, and said to
    have changed (the second value)."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    remaining, short = size, False
    while remaining:
        want = view[:min(CHUNK, remaining)]
        got = 0 if short else os.readv(source, [want])
        if not got:
            short, got = True, len(want)
            want[:] = bytes(got)
        else:
            digest.update(want[:got])
        write_all(out, want[:got])
        remaining -= got
    write_all(out, bytes(-size % BLOCK))
    return digest.hexdigest(), short


def pack(directory: str, paths: list[str] | None, max_bytes: int) -> tuple[list[Any], list[Any]]:
    root = open_root(directory, make=False)
    entries: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    total = 0
    out, buffer = sys.stdout.fileno(), bytearray(CHUNK)
    for name in (paths if paths is not None else walk(root)):
        try:
            parts = parts_of(name)
            parent = open_dir(root, parts[:-1], make=False)
        except (Refused, OSError) as error:
            skipped.append({"path": name, "reason": str(error)})
            continue
        try:
            try:
                info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except OSError as error:
                skipped.append({"path": name, "reason": error.strerror or str(error)})
                continue
            mode = info.st_mode
            member = tarfile.TarInfo(name)
            member.mode, member.mtime = stat.S_IMODE(mode), int(info.st_mtime)
            if stat.S_ISDIR(mode):
                member.type = tarfile.DIRTYPE
                write_all(out, header(member))
                entries.append({"path": name, "kind": "dir", "size": 0, "mode": member.mode})
            elif stat.S_ISLNK(mode):
                target = os.readlink(parts[-1], dir_fd=parent)
                if not link_stays_inside(parts, target):
                    skipped.append({"path": name,
                                    "reason": f"a link to {target!r}, out of the directory"})
                    continue
                member.type, member.linkname = tarfile.SYMTYPE, target
                write_all(out, header(member))
                entries.append({"path": name, "kind": "symlink", "size": 0, "mode": 0o777,
                                "target": target})
            elif not stat.S_ISREG(mode):
                skipped.append({"path": name, "reason": "not a regular file, a directory or a link"})
            elif info.st_nlink > 1:
                skipped.append({"path": name, "reason": f"a hard link ({info.st_nlink} names"
                                " for one file): only files with one name are taken"})
            elif total + info.st_size > max_bytes:
                raise Refused(f"{name!r} would take the stream over its {max_bytes}-byte bound")
            else:
                total += info.st_size
                entries.append(send_file(out, buffer, parent, parts[-1], member, info.st_size))
                entries[-1]["path"] = name
        finally:
            os.close(parent)
    write_all(out, bytes(2 * BLOCK))
    return entries, skipped


def send_file(out: int, buffer: bytearray, parent: int, name: str, member: tarfile.TarInfo,
              size: int) -> dict[str, Any]:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(f"{name!r} changed kind while read")
        member.size = size
        write_all(out, header(member))
        digest, short = send_body(out, fd, size, buffer)
    finally:
        os.close(fd)
    entry = {"kind": "file", "size": size, "mode": member.mode, "sha256": digest}
    if short:
        entry["changed"] = True
    return entry


def walk(root: int) -> list[str]:
    """Every entry beneath the root, parents before children, no link followed."""
    found: list[str] = []
    pending = [""]
    while pending:
        directory = pending.pop()
        fd = open_dir(root, directory.split("/") if directory else [], make=False)
        try:
            names = sorted(os.listdir(fd))
            for name in names:
                path = f"{directory}/{name}" if directory else name
                found.append(path)
                if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    pending.append(path)
        finally:
            os.close(fd)
    return found


def widen_pipes() -> None:
    """Pipes of a MiB, not 64 KiB: the engine copies the stream through them, and each time
    one fills or empties is a wakeup. Unprivileged processes may go up to fs.pipe-max-size."""
    for fd in (0, 1):
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)
        except OSError:
            pass  # not a pipe, or a kernel (gVisor's) that keeps its own size: slower, not wrong


def main(argv: list[str]) -> int:
    widen_pipes()
    try:
        if argv[0] == "in":
            entries = unpack(argv[1], int(argv[2]), int(argv[3]))
            report(ok=True, entries=entries, skipped=[])
        else:
            request = json.loads(sys.stdin.buffer.readline())
            entries, skipped = pack(argv[1], request.get("paths"), int(request["max_bytes"]))
            sys.stdout.flush()
            report(ok=True, entries=entries, skipped=skipped)
    except (Refused, OSError, tarfile.TarError, ValueError, KeyError) as error:
        report(ok=False, error=str(error) or type(error).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
