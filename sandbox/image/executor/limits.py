"""The sandbox's limits: the prelude that puts every tool under them, and the notes that say
when a call ran into one."""

from __future__ import annotations

from .config import (
    ADDRESS_SPACE_MB,
    MEMORY_LIMIT,
    MEMORY_MB,
    OOM_KILLS,
    PIDS_LIMIT,
    PIDS_REFUSED,
    TOOL_OOM_SCORE_ADJ,
)


def _counter(sources) -> int:
    for path, key in sources:
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return 0


def _first_line(paths) -> str:
    for path in paths:
        try:
            with open(path) as f:
                return f.readline().strip()
        except OSError:
            continue
    return "?"


def _tool_prelude() -> list[str]:
    """What every tool starts through: a shell that puts the tool first in line for the OOM
    killer (it inherited the executor's lowered score) and, where the host asks, caps its
    address space, then becomes the tool (`exec`: no extra process stays)."""
    script = f"echo {TOOL_OOM_SCORE_ADJ} >/proc/self/oom_score_adj;"
    if ADDRESS_SPACE_MB.isdigit():
        script += f" ulimit -v {int(ADDRESS_SPACE_MB) * 1024};"
    # `unset PWD`: the shell exports it, and a tool's environment is CHILD_ENV alone.
    return ["/bin/sh", "-c", f'{{ {script} }} 2>/dev/null; unset PWD; exec "$@"', "tether-tool"]


TOOL_PRELUDE = _tool_prelude()


def _limit_notes(oom_before: int, refused_before: int) -> str:
    """Says which of the sandbox's limits the call ran into, so the result explains itself."""
    notes = ""
    if _counter(OOM_KILLS) > oom_before:
        # The limit a person set (memory_mb), not the container's: that one also holds the
        # memory-backed workspace.
        if MEMORY_MB.isdigit():
            mib = f"{MEMORY_MB} MiB"
        else:
            limit = _first_line(MEMORY_LIMIT)
            mib = f"{int(limit) // (1 << 20)} MiB" if limit.isdigit() else limit
        notes += f"\n[tether: a process was killed at the sandbox's memory limit ({mib})]"
    refused = _counter(PIDS_REFUSED) - refused_before
    if refused > 0:
        notes += (f"\n[tether: {refused} process creation(s) refused at the sandbox's limit of"
                  f" {_first_line(PIDS_LIMIT)} processes]")
    return notes
