"""The container settings every sandbox gets. One place, so no path can forget one.

Each setting answers an attack from the hostile-input list in issue 3 or a check of the
CIS Docker Benchmark's container-runtime section.
"""

from __future__ import annotations

from typing import Any

from docker.types import LogConfig, Mount, Ulimit
from tether.contracts import SandboxSpec

SANDBOX_UID = 10001
EXECUTOR_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "KILL", "SETGID", "SETUID"]
"""Under gVisor only, the executor starts as root with these, takes a uid of its own and runs
tools as SANDBOX_UID with none (see `separate_executor`)."""
WORKSPACE = "/workspace"
EGRESS_MOUNT = "/run/tether-egress"
"""Where a run whose network allows something finds the host's egress proxy: a directory
holding one socket (`egress.sock`), mounted read-only. Runs with network "none" have no mount."""
EGRESS_SOCKET = "egress.sock"
EGRESS_CA_BUNDLE = "ca-bundle.pem"
"""Beside the socket, for a run with brokered secrets: the CAs its tools trust, the run's own
among them (its certificate only; the key stays with the proxy)."""
TMP_MB = 64
SHM_MB = 64
FILES_PER_MB = 128
"""Files a memory-backed mount may hold per MiB of its size (room for files of 8 KiB on
average): without a cap, empty files cost no space yet pin about a KiB of kernel memory each."""
INODE_BYTES = 1536
"""What the kernel charges a container for one tmpfs file (inode and dentry), rounded up."""
NOFILE = 1024
HOST_NPROC = 8192
# The executor lowers its own OOM score to this (an unprivileged process may, down to 0) and
# starts every tool at 1000: within the sandbox's memory limit, the kernel kills a tool first.
# Under host memory pressure, tools and then executors still die before anything outside.
EXECUTOR_OOM_SCORE_ADJ = 500
# gVisor's kernel (the Sentry), its file proxy and, on the ptrace platform, host stub
# processes for every sandboxed process (about 5 each, measured) run in the container's
# cgroup: they need room of their own.
GVISOR_MEMORY_MB = 64
GVISOR_HOST_PIDS_PER_PROCESS = 8
GVISOR_HOST_PIDS = 128
# Half the engine's default weight: when the CPU is contended, the runtime's own containers
# (Temporal, its database) win over sandboxes. `cpus` still caps each sandbox outright.
CPU_SHARES = 512
# CIS 5.14 asks for on-failure with at most 5 restarts. A restarted sandbox comes back
# empty (fresh workspace, fresh ledger), so the host treats any restart (`RestartCount`) as
# a lost sandbox: it never answers for calls its earlier life recorded.
RESTART_POLICY = {"Name": "on-failure", "MaximumRetryCount": 5}


def is_gvisor(runtime: str | None) -> bool:
    """Whether the OCI runtime is gVisor's `runsc` (under the names engines usually give it)."""
    return runtime is not None and (runtime.startswith("runsc") or "gvisor" in runtime)


def files_for(size_mb: int) -> int:
    return max(1024, size_mb * FILES_PER_MB)


def tmpfs_mb(size_mb: int) -> int:
    """The memory a tmpfs of `size_mb` can take, full of data or full of files."""
    return size_mb + -(-files_for(size_mb) * INODE_BYTES // (1 << 20))


def memory_limit_mb(spec: SandboxSpec) -> int:
    """The container's memory limit: `memory_mb` for the executor and the tools, plus all the
    memory-backed space (workspace, /tmp, /dev/shm), whose pages the kernel charges to the
    container too. A full workspace then gives the tool ENOSPC and leaves `memory_mb` whole."""
    limit = spec.memory_mb + tmpfs_mb(spec.disk_mb) + tmpfs_mb(TMP_MB) + tmpfs_mb(SHM_MB)
    return limit + (GVISOR_MEMORY_MB if is_gvisor(spec.runtime) else 0)


def separate_executor(spec: SandboxSpec) -> bool:
    """Whether the executor runs as a uid of its own, apart from the tools. Under runc the
    executor is the container's init and not dumpable, so no tool of its uid can open its
    /proc entries (the host's stream) or signal it, and the container needs no capability at
    all. gVisor's /proc (Debian's 2022 runsc) lets a process of the same uid open another's
    file descriptors whatever its dumpability: there the executor starts as root, keeps five
    capabilities under a uid of its own, and starts tools as SANDBOX_UID with none."""
    return is_gvisor(spec.runtime)


def executor_environment(spec: SandboxSpec, *, egress: bool = False) -> dict[str, str]:
    """The executor's environment: tether's own non-secret values, nothing from the host.
    Tools never see it (the executor gives them an environment of their own)."""
    env = {"TETHER_MEMORY_MB": str(spec.memory_mb)}
    if egress:
        env["TETHER_EGRESS_SOCKET"] = f"{EGRESS_MOUNT}/{EGRESS_SOCKET}"
        if spec.network != "none" and spec.network.secrets:
            env["TETHER_EGRESS_CA"] = f"{EGRESS_MOUNT}/{EGRESS_CA_BUNDLE}"
    if separate_executor(spec):
        env["TETHER_TOOL_UID"] = str(SANDBOX_UID)
    if is_gvisor(spec.runtime):
        # gVisor (this release) has no OOM killer of its own: past the cgroup's limit the host
        # kills the whole sandbox. A per-process address-space cap stops one runaway tool first.
        env["TETHER_ADDRESS_SPACE_MB"] = str(spec.memory_mb)
    return env


def _tmpfs(size_mb: int, options: str) -> str:
    return f"{options},size={size_mb}m,nr_inodes={files_for(size_mb)}"


def container_kwargs(spec: SandboxSpec, *, name: str, labels: dict[str, str],
                     executor: bool = True, egress_dir: str | None = None) -> dict[str, Any]:
    """Keyword arguments for `containers.create` that make a hardened sandbox. `executor`:
    the image's main process is tether's executor, which is then the container's init.
    `egress_dir`: the host directory of the run's egress socket, for a run whose network
    allows something (still no network of the container's own: see EGRESS_MOUNT)."""
    gvisor = is_gvisor(spec.runtime)
    separate = executor and separate_executor(spec)
    memory = f"{memory_limit_mb(spec)}m"
    kwargs: dict[str, Any] = dict(
        image=spec.image,
        name=name,
        labels=labels,
        hostname="sandbox",
        # No network at all: not even loopback to the host. Nothing from the host's
        # environment either: the image's, and the limits the executor reports.
        network_mode="none",
        environment=executor_environment(spec, egress=egress_dir is not None),
        # Root only to become the executor's own uid at once (`separate_executor`).
        user="0:0" if separate else f"{SANDBOX_UID}:{SANDBOX_UID}",
        read_only=True,
        tmpfs={
            # The workspace is the only sizeable writable place, bounded by disk_mb (and in
            # files). Like /tmp and /dev/shm it lives in memory: the memory limit has room for
            # all three on top of memory_mb (`memory_limit_mb`).
            WORKSPACE: _tmpfs(spec.disk_mb, f"rw,nosuid,nodev,exec,uid={SANDBOX_UID},"
                              f"gid={SANDBOX_UID},mode=0700"),
            "/tmp": _tmpfs(TMP_MB, "rw,noexec,nosuid,nodev,mode=1777"),
            "/dev/shm": _tmpfs(SHM_MB, "rw,noexec,nosuid,nodev,mode=1777"),
        },
        cap_drop=["ALL"],
        cap_add=EXECUTOR_CAPABILITIES if separate else None,
        # The engine's default seccomp profile stays on: we only add no-new-privileges.
        security_opt=["no-new-privileges:true"],
        # The executor is init itself (it reaps orphans): the only process that holds the
        # host's stream, and not dumpable, so no tool can read or write the stream through
        # /proc/1/fd as it could through docker-init's, which runs as the tools' uid. An image
        # without the executor keeps docker-init to reap what `docker exec` leaves.
        init=not executor,
        mem_limit=memory,
        memswap_limit=memory,
        nano_cpus=int(spec.cpus * 1e9),
        cpu_shares=CPU_SHARES,
        # Under gVisor the cgroup also holds the Sentry's threads and the platform's stub
        # processes; the sandbox's own kernel holds the tools to `pids` (RLIMIT_NPROC below).
        pids_limit=spec.pids * GVISOR_HOST_PIDS_PER_PROCESS + GVISOR_HOST_PIDS if gvisor else spec.pids,
        ulimits=[
            Ulimit(name="nofile", soft=NOFILE, hard=NOFILE),
            # Under runc, RLIMIT_NPROC counts every process of the uid on the host, and all
            # sandboxes share one uid: a host-wide ceiling, the per-run cap is pids_limit.
            # Under gVisor it counts the sandbox's own processes: the per-run cap.
            Ulimit(name="nproc", soft=spec.pids if gvisor else HOST_NPROC,
                   hard=spec.pids if gvisor else HOST_NPROC),
        ],
        # Under host memory pressure, a sandbox's tools die before anything else; its
        # executor lowers itself to EXECUTOR_OOM_SCORE_ADJ (see there).
        oom_score_adj=1000,
        # The executor speaks over stdin/stdout; stdin stays open across attaches so a
        # restarted worker can reattach.
        stdin_open=True,
        tty=False,
        # Tool output goes through the executor's capped responses, never to a log file.
        log_config=LogConfig(type="none"),
        restart_policy=RESTART_POLICY,
        # The executor, as the container's init, gets only the signals it handles, and it
        # handles no SIGTERM (a tool could send one): `docker stop` and the engine's own
        # shutdown would wait their timeout. A sandbox holds nothing to save: stopping it is
        # killing it, at once, as its SIGTERM did when docker-init was init.
        stop_signal="SIGKILL",
        detach=True,
    )
    if spec.runtime:
        kwargs["runtime"] = spec.runtime
    if egress_dir is not None:
        kwargs["mounts"] = [Mount(target=EGRESS_MOUNT, source=egress_dir, type="bind", read_only=True)]
    return kwargs
