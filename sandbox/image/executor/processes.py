"""The processes the executor starts, and those the calls leave behind: each tool in a session
of its own, every orphan reaped (the executor is the container's init), and the strays
killed when no call could own them."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from .config import TOOL_UID, WORKSPACE

_children_lock = threading.Lock()
"""Held while a process is started and while orphans are reaped: the reaper must never reap a
child whose `Popen` is still to learn its exit status."""
_children: set[int] = set()
"""The pids of the processes this executor started and still waits for (tools, MCP servers)."""
_child_exited = threading.Event()


def _start(argv: list, **options) -> subprocess.Popen:
    """Starts a tool or server in a session of its own, registered so the reaper leaves it to
    its `Popen`."""
    if TOOL_UID:
        options.update(user=int(TOOL_UID), group=int(TOOL_UID), extra_groups=[])
    with _children_lock:
        process = subprocess.Popen(argv, cwd=WORKSPACE, start_new_session=True, close_fds=True,
                                   **options)
        _children.add(process.pid)
    return process


def _wait(process: subprocess.Popen) -> int:
    code = process.wait()
    with _children_lock:
        _children.discard(process.pid)
    return code


def _reap_orphans() -> None:
    """Reaps the exited processes that are nobody's to wait for. As the container's init the
    executor inherits every orphan (a daemon's exit, a group killed at a timeout), and an
    unreaped one holds a pid of the sandbox's `pids` limit."""
    with _children_lock:
        for pid, (parent, state) in _states().items():
            if parent == os.getpid() and state == "Z" and pid not in _children:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def _reap_forever() -> None:
    while True:
        _child_exited.wait(timeout=5.0)
        _child_exited.clear()
        _reap_orphans()


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _states() -> dict[int, tuple[int, str]]:
    """Every process in the container: its parent's pid and its state (`Z` for a zombie)."""
    states = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rindex(b")") + 2:].split()
        states[int(name)] = (int(fields[1]), fields[0].decode())
    return states


def _strays() -> list[int]:
    """Processes tool calls left behind: all but init, this executor, and what entered by
    `docker exec` (health checks, an operator's shell). Those have their parent outside the
    container (ppid 0), which no process a tool starts can have; a process's name proves
    nothing, since a tool chooses it."""
    parents = {pid: parent for pid, (parent, _) in _states().items()}

    def entered_by_exec(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in (0, 1) and pid not in seen:
            seen.add(pid)
            if parents[pid] == 0:
                return True
            pid = parents[pid]
        return False

    keep = {1, os.getpid()}
    return [pid for pid in parents if pid not in keep and not entered_by_exec(pid)]


def _kill_strays(wait: float = 2.0) -> None:
    """Kills the leftovers and reaps them, so none outlives the call that returns next.
    Repeats, because a leftover may fork while it is being killed, and its children come to
    init only once it is dead."""
    deadline = time.monotonic() + wait
    while (strays := _strays()) and time.monotonic() < deadline:
        for pid in strays:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
        _reap_orphans()
