"""The container settings every sandbox gets. One place, so no path can forget one.

Each setting answers an attack from the hostile-input list in issue 3 or a check of the
CIS Docker Benchmark's container-runtime section.
"""

from __future__ import annotations

from typing import Any

from docker.types import LogConfig, Ulimit
from tether.contracts import SandboxSpec

SANDBOX_UID = 10001
WORKSPACE = "/workspace"
TMP_MB = 64
NOFILE = 1024
HOST_NPROC = 8192
# Half the engine's default weight: when the CPU is contended, the runtime's own containers
# (Temporal, its database) win over sandboxes. `cpus` still caps each sandbox outright.
CPU_SHARES = 512
# CIS 5.14 asks for on-failure with at most 5 restarts. A restarted sandbox comes back
# empty (fresh workspace, fresh ledger), so the host treats any restart (`RestartCount`) as
# a lost sandbox: it never answers for calls its earlier life recorded.
RESTART_POLICY = {"Name": "on-failure", "MaximumRetryCount": 5}


def container_kwargs(spec: SandboxSpec, *, name: str, labels: dict[str, str]) -> dict[str, Any]:
    """Keyword arguments for `containers.create` that make a hardened sandbox."""
    kwargs: dict[str, Any] = dict(
        image=spec.image,
        name=name,
        labels=labels,
        hostname="sandbox",
        # No network at all: not even loopback to the host. Nothing from the host's
        # environment either: the container's env is the image's alone.
        network_mode="none",
        environment={},
        user=f"{SANDBOX_UID}:{SANDBOX_UID}",
        read_only=True,
        tmpfs={
            # The workspace is the only sizeable writable place, bounded by disk_mb. Like
            # /tmp and /dev/shm it lives in memory, so its bytes also count against memory_mb.
            WORKSPACE: f"rw,nosuid,nodev,exec,size={spec.disk_mb}m,uid={SANDBOX_UID},"
            f"gid={SANDBOX_UID},mode=0700",
            "/tmp": f"rw,noexec,nosuid,nodev,size={TMP_MB}m,mode=1777",
        },
        cap_drop=["ALL"],
        # The engine's default seccomp profile stays on: we only add no-new-privileges.
        security_opt=["no-new-privileges:true"],
        init=True,
        mem_limit=f"{spec.memory_mb}m",
        memswap_limit=f"{spec.memory_mb}m",
        nano_cpus=int(spec.cpus * 1e9),
        cpu_shares=CPU_SHARES,
        pids_limit=spec.pids,
        ulimits=[
            Ulimit(name="nofile", soft=NOFILE, hard=NOFILE),
            # RLIMIT_NPROC counts every process of the uid on the host, and all sandboxes
            # share one uid: this is a host-wide ceiling, the per-run cap is pids_limit.
            Ulimit(name="nproc", soft=HOST_NPROC, hard=HOST_NPROC),
        ],
        # Under host memory pressure, a sandbox dies before anything else.
        oom_score_adj=1000,
        # The executor speaks over stdin/stdout; stdin stays open across attaches so a
        # restarted worker can reattach.
        stdin_open=True,
        tty=False,
        # Tool output goes through the executor's capped responses, never to a log file.
        log_config=LogConfig(type="none"),
        restart_policy=RESTART_POLICY,
        detach=True,
    )
    if spec.runtime:
        kwargs["runtime"] = spec.runtime
    return kwargs
