"""Files in, artifacts out: the ops through which the host places a run's files and takes its
artifacts.

The workspace is hostile by then: every path is opened one component at a time beneath
/workspace with O_NOFOLLOW, so no symlink (nor one swapped in mid-way) leads out, and only
regular files with one name are read: a hard link could name a file the run should not hand out.
"""

from __future__ import annotations

import base64
import os
import re
import stat

from .config import LIST_MAX_FILES, LIST_MAX_SKIPPED, LIST_MAX_WALKED, MAX_WRITE_BYTES, WORKSPACE
from .privileges import _give_to_tools
from .protocol import send


def _workspace_op(op: str, request: dict) -> None:
    try:
        result = WORKSPACE_OPS[op](request)
    except (OSError, ValueError) as error:
        send({"id": request.get("id"), "ok": False, "error": str(error) or type(error).__name__})
        return
    send({"id": request.get("id"), "ok": True, "result": result})


def _parts(path: str) -> list:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{path!r} is not a name inside /workspace")
    return parts


def _open_beneath(path: str, flags: int, *, make_dirs: bool = False) -> int:
    """Opens `path` under the workspace without following any symlink on the way."""
    parts = _parts(path)
    directory = os.open(WORKSPACE, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            if make_dirs:
                try:
                    os.mkdir(part, 0o755, dir_fd=directory)
                    _give_to_tools(part, dir_fd=directory)
                except FileExistsError:
                    pass
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644, dir_fd=directory)
    finally:
        os.close(directory)


def _put_file(request: dict) -> dict:
    """Writes (or, with `append`, adds to) one file the host places before the first call."""
    data = base64.b64decode(request.get("data", ""))
    append = bool(request.get("append"))
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = _open_beneath(str(request.get("path", "")), flags, make_dirs=True)
    with os.fdopen(fd, "wb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{request.get('path')!r} is not a regular file")
        _give_to_tools(f.fileno())
        if f.tell() + len(data) > MAX_WRITE_BYTES:
            raise ValueError(f"{request.get('path')!r} would be over the {MAX_WRITE_BYTES}-byte limit")
        f.write(data)
        return {"size": f.tell()}


def _glob_pattern(glob: str):
    """`*` and `?` stay within one directory; a `**` part matches any number of them."""
    parts, out = glob.split("/"), ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out += ".*" if last else "(?:[^/]*/)*"
            continue
        out += "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
        out += "" if last else "/"
    return re.compile(out + r"\Z", re.DOTALL)


def _skip_reason(path: str, info: os.stat_result, max_bytes: int) -> str | None:
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(os.path.join(WORKSPACE, path))
        real = os.path.realpath(os.path.join(WORKSPACE, path))
        where = "inside" if real.startswith(WORKSPACE + os.sep) else "outside"
        return f"symbolic link to {target!r} ({where} the workspace): links are not followed"
    if stat.S_ISFIFO(mode):
        return "a fifo, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file, not a regular file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if info.st_nlink > 1:
        return f"a hard link ({info.st_nlink} names for one file): only files with one name are taken"
    if info.st_size > max_bytes:
        return f"{info.st_size} bytes is over the {max_bytes}-byte limit per artifact"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    if re.search(r"[\x00-\x1f\x7f\\]", path):
        return "its name holds a backslash or a control character"
    return None


def _list_artifacts(request: dict) -> dict:
    """Every workspace entry a glob matches, walked by lstat (links are never followed):
    regular files to take, and the others with the reason they are skipped. Bounded for a
    hostile workspace: at most `max_files` files and `max_skipped` skipped entries are listed
    (the rest counted), and at most `max_walked` entries looked at; past those the walk stops
    and `cut` says in which directory."""
    patterns = [_glob_pattern(str(g)) for g in request.get("globs") or []]
    prefixes = [_literal_prefix(str(g)) for g in request.get("globs") or []]
    max_bytes = int(request.get("max_bytes", MAX_WRITE_BYTES))
    max_files = int(request.get("max_files", LIST_MAX_FILES))
    max_skipped = int(request.get("max_skipped", LIST_MAX_SKIPPED))
    budget = max_walked = int(request.get("max_walked", LIST_MAX_WALKED))
    files: list[dict] = []
    skipped: list[dict] = []
    files_over = skipped_over = 0
    cut = None
    pending = [""]
    while pending and cut is None:
        directory = pending.pop()
        names, full = _names(directory, budget)
        budget -= len(names)
        if full:
            cut = {"path": os.fsencode(directory).decode("utf-8", "replace") or ".",
                   "walked": max_walked}
        for name in sorted(names):
            path = f"{directory}/{name}" if directory else name
            try:
                info = os.lstat(os.path.join(WORKSPACE, path))
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                # Only where a glob could match: a tree no glob reaches (node_modules beside
                # `out/*.txt`) costs the walk nothing.
                if any(path.startswith(p) or p.startswith(path + "/") for p in prefixes):
                    pending.append(path)
                continue
            if not any(p.match(path) for p in patterns):
                continue
            reason = _skip_reason(path, info, max_bytes)
            if reason and len(skipped) < max_skipped:
                # Shown as readable text: a name that is not UTF-8 can't cross JSON as it is.
                shown = os.fsencode(path).decode("utf-8", "replace")
                skipped.append({"path": shown, "reason": reason})
            elif reason:
                skipped_over += 1
            elif len(files) < max_files:
                files.append({"path": path, "size": info.st_size})
            else:
                files_over += 1
    return {"files": sorted(files, key=lambda f: f["path"]),
            "skipped": sorted(skipped, key=lambda f: f["path"]),
            "files_over": files_over, "skipped_over": skipped_over, "cut": cut}


def _names(directory: str, budget: int) -> tuple[list, bool]:
    """Up to `budget` names of a directory's entries, read one by one (a directory of
    millions is never held whole), and whether there were more."""
    names: list[str] = []
    try:
        with os.scandir(os.path.join(WORKSPACE, directory) or WORKSPACE) as entries:
            for entry in entries:
                if len(names) == budget:
                    return names, True
                names.append(entry.name)
    except OSError:
        pass
    return names, False


def _literal_prefix(glob: str) -> str:
    """The part of a glob before its first wildcard: every path it matches starts so."""
    cut = min((glob.index(c) for c in "*?" if c in glob), default=len(glob))
    return glob[:cut]


# Artifacts' bytes leave by tar stream (the host's `transfer.py`), not through this channel.
WORKSPACE_OPS = {"file_put": _put_file, "artifact_list": _list_artifacts}
