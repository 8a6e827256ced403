"""The `read_file` and `write_file` tools: confined to the workspace, links that lead out refused."""

from __future__ import annotations

import os
import time

from .config import MAX_WRITE_BYTES, WORKSPACE
from .privileges import _give_to_tools
from .protocol import _result


def _confined(path: str) -> str | None:
    """The absolute path inside the workspace, or None if it points (or links) outside."""
    full = os.path.normpath(os.path.join(WORKSPACE, path))
    real = os.path.realpath(full)
    inside = (WORKSPACE, WORKSPACE + os.sep)
    if (full == WORKSPACE or full.startswith(inside[1])) and (
        real == WORKSPACE or real.startswith(inside[1])
    ):
        return full
    return None


def _read_file(path: str, limit: int) -> dict:
    started = time.monotonic()
    full = _confined(path)
    if full is None:
        return _result(1, stderr=f"read_file: {path!r} is outside /workspace")
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not os.path.isfile(full):
                return _result(1, stderr=f"read_file: {path!r} is not a regular file")
            data = f.read(limit + 1)
    except OSError as error:
        return _result(1, stderr=f"read_file: {path!r}: {error.strerror}")
    return _result(0, stdout=data[:limit].decode("utf-8", "replace"), truncated=len(data) > limit,
                   duration_ms=int((time.monotonic() - started) * 1000))


def _make_dirs(full: str) -> None:
    """`os.makedirs`, each directory it makes given to the tools."""
    if os.path.isdir(full):
        return
    _make_dirs(os.path.dirname(full))
    try:
        os.mkdir(full, 0o755)
    except FileExistsError:
        return
    _give_to_tools(full)


def _write_file(path: str, content: str) -> dict:
    started = time.monotonic()
    full = _confined(path)
    if full is None or full == WORKSPACE:
        return _result(1, stderr=f"write_file: {path!r} is outside /workspace")
    data = content.encode()
    if len(data) > MAX_WRITE_BYTES:
        return _result(1, stderr=f"write_file: {len(data)} bytes is over the {MAX_WRITE_BYTES} limit")
    try:
        _make_dirs(os.path.dirname(full))
        if _confined(os.path.relpath(full, WORKSPACE)) is None:
            return _result(1, stderr=f"write_file: {path!r} is outside /workspace")
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            _give_to_tools(f.fileno())
            f.write(data)
    except OSError as error:
        return _result(1, stderr=f"write_file: {path!r}: {error.strerror}")
    return _result(0, stdout=f"wrote {len(data)} bytes to {os.path.relpath(full, WORKSPACE)}",
                   duration_ms=int((time.monotonic() - started) * 1000))
