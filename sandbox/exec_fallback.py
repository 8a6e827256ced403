"""Tool calls by `docker exec`, for images that have no Python and so no executor.

Slower (a new exec per call) and without the executor's ledger, so a retried call may run
twice; the image built by `make image` always has the executor.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from docker.models.containers import Container

from workflows.types import ToolResult


def run_with_docker_exec(
    container: Container, tool: str, arguments: dict[str, Any], key: str,
    timeout_s: float, limit_bytes: int,
) -> ToolResult:
    if tool != "shell":
        return ToolResult(exit_code=2, stderr=f"{tool} needs the tether executor (python3) in the image")
    started = time.monotonic()
    # `timeout -s KILL` inside the container kills the command when the host can't.
    command = ["timeout", "-s", "KILL", f"{timeout_s:g}", "sh", "-c", str(arguments.get("command", ""))]
    result = container.exec_run(
        ["sh", "-c", " ".join(shlex.quote(part) for part in command)],
        environment={"TETHER_IDEMPOTENCY_KEY": key}, workdir="/workspace", demux=True,
    )
    stdout, stderr = result.output
    out, err = (stdout or b""), (stderr or b"")
    truncated = len(out) > limit_bytes or len(err) > limit_bytes
    return ToolResult(
        exit_code=result.exit_code or 0,
        stdout=out[:limit_bytes].decode("utf-8", "replace"),
        stderr=err[:limit_bytes].decode("utf-8", "replace"),
        truncated=truncated,
        timed_out=result.exit_code == 137,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
