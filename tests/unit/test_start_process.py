"""A Ctrl-C that lands while `subprocess.Popen` waits for its child to exec must not lose
that child (as it once did `tether dev`'s codec server, which then held its output open):
`start_process` delivers the signal once the child is held, and kills the child it never
hands over."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from tether.embedded.processes import start_process


def processes_with(argument: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in command:
            found.append(int(pid))
    return found


EXEC_DELAY_S = 0.5


def ctrl_c_then_slow_exec() -> None:
    """Runs in the child between fork and exec, while Popen's parent waits for that exec:
    Ctrl-C reaches the parent in that wait, always (no timer to come early or late)."""
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(EXEC_DELAY_S)


def test_ctrl_c_while_a_child_execs_raises_once_it_is_held_and_stops_it():
    # A unique duration names the child among this machine's processes.
    duration = f"61.{uuid.uuid4().int % 10**6:06d}"
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        start_process(["sleep", duration], preexec_fn=ctrl_c_then_slow_exec)
    # Not raised inside Popen's wait: only after the child had exec'd.
    assert time.monotonic() - started >= EXEC_DELAY_S
    assert processes_with(duration) == []


def test_a_child_started_without_a_signal_is_handed_over_running():
    duration = f"62.{uuid.uuid4().int % 10**6:06d}"
    process = start_process(["sleep", duration])
    try:
        assert process.poll() is None
        # Popen returns as the exec begins (the child then still shows as this interpreter).
        deadline = time.monotonic() + 5
        while processes_with(duration) != [process.pid] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_with(duration) == [process.pid]
        # The usual handler is back: Ctrl-C after the start is a KeyboardInterrupt as ever.
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        process.kill()
        process.wait()


def test_with_plain_popen_the_same_ctrl_c_loses_the_child():
    # What start_process is for: this is the lost child, found by its arguments and stopped.
    duration = f"63.{uuid.uuid4().int % 10**6:06d}"
    with pytest.raises(KeyboardInterrupt):
        subprocess.Popen(["sleep", duration], preexec_fn=ctrl_c_then_slow_exec)
    deadline = time.monotonic() + 5
    while not (lost := processes_with(duration)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in lost:
        os.kill(pid, signal.SIGKILL)
    assert lost, "Popen interrupted while its child execs has always left the child running"
