"""What the executor knows of its sandbox: its paths and bounds, and what the host promised
(its SandboxSpec), read from the executor's environment."""

from __future__ import annotations

import os

WORKSPACE = "/workspace"
LEDGER_RESULTS_KEPT = 256
LEDGER_MAX_BYTES = 64 * 1024 * 1024
LIST_MAX_FILES = 1000
LIST_MAX_SKIPPED = 100
LIST_MAX_WALKED = 100_000
"""An artifact listing's bounds when the host names none (it sends contracts/files.py's)."""
MAX_WRITE_BYTES = 16 * 1024 * 1024
LEADER_GONE_GRACE = 0.25
MCP_SESSION_BYTES = 16 * 1024 * 1024
MCP_IDLE_SECONDS = 600.0
"""A session nothing has used for this long is closed, when its host names no other limit:
its host is gone (a worker that died mid-call, whose call was never retried here)."""
CHILD_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORKSPACE,
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# What the host promised the sandbox (its SandboxSpec), from the executor's environment.
MEMORY_MB = os.environ.get("TETHER_MEMORY_MB", "")
ADDRESS_SPACE_MB = os.environ.get("TETHER_ADDRESS_SPACE_MB", "")
EGRESS_SOCKET = os.environ.get("TETHER_EGRESS_SOCKET", "")
"""Set only for a run whose network allows something: the host's egress proxy, mounted in."""
EGRESS_CA = os.environ.get("TETHER_EGRESS_CA", "")
"""Set only for a run with brokered secrets: the trust bundle beside the socket (the system's
CAs and the run's own, whose certificates the proxy shows for the run's secret hosts)."""
CA_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS",
                "GIT_SSL_CAINFO", "CURL_CA_BUNDLE")
EGRESS_PORT = 3128
HANDOFF_NAME = "listener.sock"
"""Beside the egress socket: where the proxy takes the tools' listener (`egress.py`)."""
HANDOFF_TIMEOUT_S = 5.0
EGRESS_CHUNK = 256 * 1024
TOOL_UID = os.environ.get("TETHER_TOOL_UID", "")
"""Set where the host starts the executor as root (under gVisor): the uid tools run as, while
the executor takes EXECUTOR_UID. Unset, tools run as the executor's own uid."""
EXECUTOR_UID = 10002
EXECUTOR_CAPABILITIES = {"CHOWN": 0, "DAC_OVERRIDE": 1, "KILL": 5, "SETGID": 6, "SETUID": 7}
"""What the executor keeps of root: start tools as TOOL_UID, signal them, and read and write
their workspace, giving what it writes to them."""
PR_SET_KEEPCAPS = 8
CAPABILITY_VERSION_3 = 0x20080522
EXECUTOR_OOM_SCORE_ADJ = 500
TOOL_OOM_SCORE_ADJ = 1000
PR_SET_DUMPABLE = 4
OUT_OF_MEMORY = ("MemoryError", "Cannot allocate memory", "out of memory")


# cgroup v1 and v2 paths of the counters that say a limit was hit during a call.
OOM_KILLS = (("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
             ("/sys/fs/cgroup/memory.events", "oom_kill"))
PIDS_REFUSED = (("/sys/fs/cgroup/pids/pids.events", "max"), ("/sys/fs/cgroup/pids.events", "max"))
MEMORY_LIMIT = ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
PIDS_LIMIT = ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
