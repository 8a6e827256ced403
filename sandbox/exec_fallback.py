"""Tool calls by `docker exec`, for images that have no Python and so no executor.

Slower (a new exec per call) and without the executor's ledger, so a retried call may run
twice; the image built by `make image` always has the executor. Output is still capped as it
is read, head and tail kept, so a flood costs the worker no more than the cap.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

from docker.models.containers import Container
from tether.contracts import ToolResult
from tether.sandbox.image.executor.output import CappedBuffer  # the executor's own, so both paths cap alike


def run_with_docker_exec(
    container: Container, tool: str, arguments: dict[str, Any], key: str,
    timeout_s: float, limit_bytes: int,
) -> ToolResult:
    if tool != "shell":
        return ToolResult(exit_code=2, stderr=f"{tool} needs the tether executor (python3) in the image")
    started = time.monotonic()
    # `timeout -s KILL` inside the container kills the command when the host can't.
    command = ["timeout", "-s", "KILL", f"{timeout_s:g}", "sh", "-c", str(arguments.get("command", ""))]
    api = container.client.api
    exec_id = api.exec_create(
        container.id, ["sh", "-c", " ".join(shlex.quote(part) for part in command)],
        environment={"TETHER_IDEMPOTENCY_KEY": key}, workdir="/workspace",
    )["Id"]
    out, err = CappedBuffer(limit_bytes), CappedBuffer(limit_bytes)
    for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
        if stdout:
            out.add(stdout)
        if stderr:
            err.add(stderr)
    exit_code = api.exec_inspect(exec_id)["ExitCode"] or 0
    return ToolResult(
        exit_code=exit_code,
        stdout=out.text(),
        stderr=err.text(),
        truncated=out.truncated or err.truncated,
        timed_out=exit_code == 137,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
