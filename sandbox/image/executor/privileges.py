"""What the executor keeps of its privileges and how it guards itself from the tools: a uid
and capabilities of its own where it starts as root, not dumpable, last for the OOM killer."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

from .config import (
    CAPABILITY_VERSION_3,
    EXECUTOR_CAPABILITIES,
    EXECUTOR_OOM_SCORE_ADJ,
    EXECUTOR_UID,
    PR_SET_DUMPABLE,
    PR_SET_KEEPCAPS,
    TOOL_UID,
)
from .processes import _child_exited, _reap_forever


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _become_executor() -> None:
    """Where the host starts it as root (under gVisor, whose /proc lets a process of the same
    uid open another's file descriptors, not dumpable or not), the executor takes a uid of its
    own and keeps only EXECUTOR_CAPABILITIES: tools, started as TOOL_UID, hold no capability
    (no-new-privileges, nothing to gain at exec) and can't open its /proc entries. Fails
    closed: an executor that can't drop root serves nothing."""
    if os.getuid() != 0:
        return
    if not TOOL_UID.isdigit() or int(TOOL_UID) in (0, EXECUTOR_UID):
        sys.exit(f"tether executor: started as root, but TETHER_TOOL_UID is {TOOL_UID!r}")
    libc = ctypes.CDLL(None, use_errno=True)
    os.setgroups([])
    os.setresgid(EXECUTOR_UID, EXECUTOR_UID, EXECUTOR_UID)
    if libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        sys.exit(f"tether executor: prctl(PR_SET_KEEPCAPS): {os.strerror(ctypes.get_errno())}")
    os.setresuid(EXECUTOR_UID, EXECUTOR_UID, EXECUTOR_UID)
    kept = sum(1 << bit for bit in EXECUTOR_CAPABILITIES.values())
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = kept
    if libc.capset(ctypes.byref(_CapHeader(CAPABILITY_VERSION_3, 0)), data) != 0:
        sys.exit(f"tether executor: capset: {os.strerror(ctypes.get_errno())}")
    libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)


def _give_to_tools(path: str | int, *, dir_fd: int | None = None) -> None:
    """What the executor creates in the workspace is the tools', as if they had written it."""
    if not TOOL_UID:
        return
    if isinstance(path, int):
        os.fchown(path, int(TOOL_UID), int(TOOL_UID))
    else:
        os.chown(path, int(TOOL_UID), int(TOOL_UID), dir_fd=dir_fd, follow_symlinks=False)


def _guard_self() -> None:
    """Makes the executor the last process of the sandbox the OOM killer picks, and keeps
    tools (the same uid) out of it: not dumpable, its /proc entries (its score, memory and file
    descriptors: the host's stream) are root's, so no tool can raise the score again, trace it,
    read the requests or write a response. As PID 1 of the container it gets only the signals
    it has a handler for: Python's SIGINT handler goes back to the default, so a tool can't
    interrupt it either. Unprivileged, a process may lower its score down to 0."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(EXECUTOR_OOM_SCORE_ADJ))
    except OSError:
        pass
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        # Without it, a tool could read the requests and forge answers: serve nothing.
        sys.exit(f"tether executor: prctl(PR_SET_DUMPABLE) failed: {os.strerror(ctypes.get_errno())}")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # A handler, not SIG_IGN: tools inherit an ignored signal, and a handler resets at exec.
    signal.signal(signal.SIGCHLD, lambda *_: _child_exited.set())
    threading.Thread(target=_reap_forever, daemon=True).start()
