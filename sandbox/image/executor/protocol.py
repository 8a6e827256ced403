"""The executor's half of the stream: one JSON response a line on stdout, and a tool call's
result as the host reads it."""

from __future__ import annotations

import json
import sys
import threading

_out_lock = threading.Lock()


def send(message: dict) -> None:
    line = json.dumps(message, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def _result(exit_code, *, stdout="", stderr="", truncated=False, timed_out=False, duration_ms=0):
    return {"exit_code": exit_code, "stdout": stdout, "stderr": stderr, "truncated": truncated,
            "timed_out": timed_out, "duration_ms": duration_ms}
