"""The channel between the host and a sandbox's executor, attacked from both ends, under runc
and gVisor.

From inside a tool: writing junk, forged answers or a 60 MB line into the executor's stream,
reading its requests, tracing or signalling it. None of it reaches the stream (the executor is
the container's init and not dumpable, and under gVisor a uid of its own), and the run's next
call works. From the container's main process itself, standing in for an executor taken over:
junk, an answer to nothing, a line without end, and silence. The host closes the channel and
takes the sandbox as lost, promptly and in bounded memory.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from tether.contracts import SandboxSpec
from tether.sandbox.channel import MAX_LINE_BYTES
from tether.sandbox.hardening import container_kwargs
from tether.sandbox.manager import ANSWER_GRACE_S, SandboxGone

from tests.helpers import sandboxes
from tests.sandbox.attacks import RUNTIMES, attack, gvisor, require
from tests.sandbox.direct import call, direct_labels
from tests.scripts import turn

pytestmark = pytest.mark.parametrize("runtime", RUNTIMES)

WRITE_TO_THE_STREAM = """
import json, os
tried = {}
forged = json.dumps({"id": "x-0", "ok": True, "result": {"exit_code": 0, "stdout": "forged"}})
for name, data in [("junk", b"5\\n"), ("forged", forged.encode() + b"\\n"),
                   ("line_of_60_mb", b"x" * (60 << 20))]:
    for target in ("/proc/1/fd/1", "/proc/1/fd/2"):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, data)
            os.close(fd)
            tried[f"{name} {target}"] = "written"
        except OSError as error:
            tried[f"{name} {target}"] = error.strerror
print(json.dumps(tried))
"""

READ_THE_REQUESTS = """
import ctypes, glob, json, os, signal
tried = {}
for target in ["/proc/1/fd/0", *sorted(glob.glob("/proc/1/task/*/fd/0"))]:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        tried[target] = os.read(fd, 4096).decode(errors="replace") or "opened"
    except OSError as error:
        tried[target] = error.strerror
PTRACE_ATTACH = 16
libc = ctypes.CDLL(None, use_errno=True)
tried["ptrace"] = "attached" if libc.ptrace(PTRACE_ATTACH, 1, 0, 0) == 0 else os.strerror(ctypes.get_errno())
for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGINT, signal.SIGTERM):
    try:
        os.kill(1, sig)
    except OSError as error:
        tried[sig.name] = error.strerror
print(json.dumps(tried))
"""

REFUSED = {"Permission denied", "Operation not permitted", "Invalid argument"}
"""What opening, tracing or signalling the executor gets: runc refuses with EACCES or EPERM;
gVisor's procfs says EINVAL for a file it won't open."""


async def test_a_tool_cannot_write_into_the_executors_stream_and_the_next_call_works(
    temporal_client: Client, worker: str, runtime: str
):
    started = time.monotonic()
    tried, after = await attack(temporal_client, worker, turn(python=WRITE_TO_THE_STREAM),
                                turn(shell="echo after"), runtime=runtime,
                                sandbox={"tool_timeout_seconds": 20, "memory_mb": 256})
    attempts = json.loads(tried.stdout)
    assert len(attempts) == 6 and set(attempts.values()) <= REFUSED, attempts
    assert after.stdout == "after\n" and after.exit_code == 0
    assert time.monotonic() - started < 60


async def test_a_tool_cannot_read_trace_or_signal_the_executor(
    temporal_client: Client, worker: str, runtime: str
):
    tried, after = await attack(temporal_client, worker, turn(python=READ_THE_REQUESTS),
                                turn(shell="echo after"), runtime=runtime)
    attempts = json.loads(tried.stdout)
    assert "/proc/1/fd/0" in attempts and attempts["ptrace"] != "attached", attempts
    opened = {target: outcome for target, outcome in attempts.items()
              if target.startswith("/proc/") and outcome not in REFUSED}
    assert opened == {}, f"a tool reached the executor's stdin: {opened}"
    # Signals to init are dropped without an error under runc, refused under gVisor: either
    # way the executor lives on and answers.
    assert after.stdout == "after\n"


HOSTILE_MAIN = """
import json, sys
mode = sys.argv[1]
for raw in sys.stdin:
    request = json.loads(raw)
    if request["op"] == "ping":
        answer = {"id": request["id"], "ok": True, "result": {"pid": 1, "binding": None}}
        sys.stdout.write(json.dumps(answer) + "\\n")
    elif mode == "junk":
        sys.stdout.write("5\\n")
    elif mode == "answer_to_nothing":
        prefix = request["id"].rsplit("-", 1)[0]
        sys.stdout.write(json.dumps({"id": prefix + "-999999", "ok": True, "result": {}}) + "\\n")
    elif mode == "endless_line":
        chunk = "x" * (1 << 20)
        for _ in range(LINE_MB):
            sys.stdout.write(chunk)
    sys.stdout.flush()
"""
"""A container main process that answers the host's readiness ping as an executor would, then
answers a tool call the way `mode` says; "silent" never answers it."""


@pytest.fixture
async def hostile_main(docker_engine, runtime: str) -> AsyncIterator[object]:
    made: list[str] = []

    async def start(mode: str) -> str:
        spec = SandboxSpec(memory_mb=128, pids=64, disk_mb=16, runtime=require(runtime))
        kwargs = container_kwargs(spec, name=f"tether-test-{uuid.uuid4().hex[:12]}", labels=direct_labels())
        line_mb = MAX_LINE_BYTES // (1 << 20) + 64
        script = HOSTILE_MAIN.replace("LINE_MB", str(line_mb))

        def create() -> str:
            container = sandboxes().engine.containers.create(
                **kwargs, command=["python3", "-u", "-c", script, mode])
            made.append(container.id)
            container.start()
            return str(container.id)

        return await asyncio.to_thread(create)

    yield start
    for container_id in made:
        await asyncio.to_thread(sandboxes().remove, container_id)


def peak_rss_bytes_since_reset() -> int:
    """This process's peak resident memory since `reset_peak_rss` (the VmHWM counter)."""
    with open("/proc/self/status") as f:
        peak = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    assert peak is not None
    return int(peak.group(1)) * 1024


def reset_peak_rss() -> int:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    return peak_rss_bytes_since_reset()


@pytest.mark.parametrize("mode", ["junk", "answer_to_nothing"])
async def test_a_stream_that_carries_what_no_executor_writes_loses_the_sandbox_at_once(
    hostile_main, mode: str
):
    container_id = await hostile_main(mode)
    started = time.monotonic()
    with pytest.raises(SandboxGone, match="wrote what its executor never would"):
        await call(container_id, "echo hi", timeout=20)
    assert time.monotonic() - started < 5


async def test_a_line_without_end_is_cut_at_the_bound_in_bounded_memory(hostile_main, runtime: str):
    if gvisor(runtime):
        pytest.skip("the bound is the host's, whatever the runtime; gVisor's stream carries about"
                    " 1 MB/s here, too slow to reach it in a test")
    container_id = await hostile_main("endless_line")
    sandboxes().channel(container_id)  # attached and ready before the peak is measured
    baseline = reset_peak_rss()
    with pytest.raises(SandboxGone, match="a line of over"):
        await call(container_id, "echo hi", timeout=120)
    # The container wrote past the bound; the host held about the bound at most.
    assert peak_rss_bytes_since_reset() - baseline < MAX_LINE_BYTES * 1.5


async def test_an_executor_that_never_answers_is_lost_soon_after_the_calls_timeout(hostile_main):
    container_id = await hostile_main("silent")
    started = time.monotonic()
    with pytest.raises(SandboxGone, match="did not answer"):
        await call(container_id, "echo hi", timeout=1)
    assert 1 + ANSWER_GRACE_S <= time.monotonic() - started < 1 + ANSWER_GRACE_S + 5
