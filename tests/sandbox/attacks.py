"""Runs an attack as a real AgentRun through the suite's worker, beside a benign run, and
checks what every hostile-input test must: the worker kept serving the benign run, and
neither run left a container behind. The attack's tool results are read whole, as the
model reads them (the event history keeps a capped copy).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from tether import client as tether
from tether.contracts import Message, ToolCallOutput, ToolResult

from tests.helpers import conversations, sandboxes, sandboxes_of
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, tool_calls

RUNTIMES = ["runc", "runsc"]
"""The OCI runtimes every hostile test runs under: runc (the engine's default) and gVisor."""


@functools.cache
def engine_runtimes() -> frozenset[str]:
    return frozenset((sandboxes().engine.info().get("Runtimes") or {}).keys())


def require(runtime: str) -> str:
    """The runtime, or skips the test when this engine has none of that name."""
    if runtime not in engine_runtimes():
        pytest.skip(f"the Docker engine has no {runtime} runtime (scripts/ensure_docker.sh, as root"
                    f" on Debian, installs gVisor and registers it)")
    return runtime


def gvisor(runtime: str) -> bool:
    return runtime.startswith("runsc")

SMALL = {"memory_mb": 128, "pids": 64, "disk_mb": 16, "tool_timeout_seconds": 3,
         "output_limit_bytes": 4096}
"""Tight limits, so an attack meets them fast. Not the pool's spec: a container is created."""

PROCESSES = """
import json, os
seen = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) != os.getpid():
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
        seen.append([name, state])
print(json.dumps(sorted(seen)))
"""
"""A python tool that prints every other process in the container: [name, state]."""


def leftovers(processes: list[list[str]]) -> list[list[str]]:
    """What is running beyond the executor (the container's init), and a health probe the
    engine may be running (`sh` and `grep`, which entered by exec)."""
    expected = {"python3": 1}
    extra = []
    for name, state in processes:
        if expected.get(name, 0) > 0 and state != "Z":
            expected[name] -= 1
        elif name not in ("sh", "grep") or state == "Z":
            extra.append([name, state])
    return extra


async def attack(
    client: Client, queue: str, *turns: dict[str, Any], sandbox: dict[str, Any] | None = None,
    runtime: str = "runc",
) -> list[ToolResult]:
    """Runs the attack's turns (then a final answer) in a sandbox under `runtime` while a
    benign run computes 6 * 7."""
    spec = {**SMALL, "runtime": require(runtime), **(sandbox or {})}
    hostile = await tether.start_run(
        client, scripted_run("attack", *turns, turn("done"), sandbox=spec), task_queue=queue)
    benign = await tether.start_run(
        client, scripted_run("benign", turn(python="print(6 * 7)"), turn("{{last_output}}")),
        task_queue=queue)
    served = await benign.result()
    assert served.status == "completed", served
    assert served.output is not None and served.output.strip() == "42"
    result = await hostile.result()
    assert result.status == "completed", result
    assert sandboxes_of(hostile.id) == []
    assert sandboxes_of(benign.id) == []
    return await tool_results(client, hostile)


async def tool_results(client: Client, handle: WorkflowHandle[Any, Any]) -> list[ToolResult]:
    """The run's completed tool calls in call order (step, then index in the step), each
    result whole, from the conversation message its history event points to: the host
    queue's activity or the workflow worker's local activity, whichever ran it."""
    done: list[tuple[tuple[int, int], ToolResult]] = []
    for run in tool_calls(await activities(client, handle)):
        if run.outcome != "completed":
            continue
        output = ToolCallOutput.model_validate(run.result)
        message = Message.model_validate_json(conversations().blobs.get(output.message_ref))
        done.append(((run.input["step"], run.input["index"]),
                     ToolResult.model_validate_json(message.content or "")))
    return [result for _, result in sorted(done, key=lambda item: item[0])]
