"""The CIS Docker Benchmark's container-runtime checks (section 5), run against a live sandbox.

docker-bench-security can't be fetched everywhere tether runs, and several of its checks
only take notes, so the section is implemented here from the engine's own view of the
container (`docker inspect`, `docker info`, and the processes inside it), and each check
says what it saw. The numbering is CIS Docker Benchmark v1.2.0's, which docker-bench-security
uses. 5.27 (pull the latest image) concerns how images are fetched, not a container: it is
left out.

A check either passes, warns, is not applicable on this host (SELinux where the engine has
none), or is one of two allowed exceptions: no AppArmor profile where the kernel has no
AppArmor, and under gVisor the executor's five capabilities (`hardening.separate_executor`).
`python -m tether.sandbox.cis CONTAINER` prints the audit of one container.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import docker
from tether.sandbox.engine import connect_engine
from tether.sandbox.hardening import EXECUTOR_CAPABILITIES, SANDBOX_UID, is_gvisor

Status = Literal["pass", "warn", "not applicable", "exception"]
SENSITIVE_HOST_DIRS = ("/", "/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Facts:
    """What the checks look at, gathered once per audit."""

    inspect: dict[str, Any]
    security_options: list[str]
    processes: list[str]
    """The command names of the processes running in the container."""
    exec_sessions: list[dict[str, Any]]

    @property
    def host(self) -> dict[str, Any]:
        return self.inspect["HostConfig"]

    @property
    def mounts(self) -> list[dict[str, Any]]:
        return self.inspect.get("Mounts") or []

    @property
    def published_ports(self) -> list[dict[str, Any]]:
        ports = self.inspect["NetworkSettings"].get("Ports") or {}
        return [binding for bindings in ports.values() for binding in bindings or []]

    def engine_has(self, feature: str) -> bool:
        return any(f"name={feature}" in option for option in self.security_options)


Check = Callable[[Facts], tuple[Status, str]]
CHECKS: list[tuple[str, str, Check]] = []


def check(id: str, title: str) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS.append((id, title, function))
        return function
    return register


def verdict(ok: bool, good: str, bad: str) -> tuple[Status, str]:
    return ("pass", good) if ok else ("warn", bad)


@check("5.1", "an AppArmor profile is enabled, if applicable")
def apparmor(facts: Facts) -> tuple[Status, str]:
    profile = facts.inspect.get("AppArmorProfile") or ""
    if not facts.engine_has("apparmor"):
        return "exception", "the host kernel has no AppArmor, so no profile can apply"
    return verdict(profile not in ("", "unconfined"), f"profile {profile}", "no AppArmor profile")


@check("5.2", "SELinux security options are set, if applicable")
def selinux(facts: Facts) -> tuple[Status, str]:
    if not facts.engine_has("selinux"):
        return "not applicable", "the engine runs without SELinux"
    label = facts.inspect.get("ProcessLabel") or ""
    return verdict(bool(label), f"process label {label}", "no SELinux process label")


@check("5.3", "Linux kernel capabilities are restricted")
def capabilities(facts: Facts) -> tuple[Status, str]:
    added = facts.host.get("CapAdd") or []
    dropped = [c.upper() for c in facts.host.get("CapDrop") or []]
    kept = sorted(c.upper().removeprefix("CAP_") for c in added)
    if "ALL" in dropped and kept == EXECUTOR_CAPABILITIES and is_gvisor(facts.host.get("Runtime")):
        return "exception", (f"all dropped; under gVisor the executor alone keeps {', '.join(kept)}"
                             f" under a uid of its own, and tools run as uid {SANDBOX_UID} with none")
    return verdict(not added and "ALL" in dropped, "all capabilities dropped, none added",
                   f"added {added}, dropped {dropped}")


@check("5.4", "privileged containers are not used")
def privileged(facts: Facts) -> tuple[Status, str]:
    return verdict(not facts.host.get("Privileged"), "not privileged", "runs privileged")


@check("5.5", "sensitive host system directories are not mounted")
def sensitive_mounts(facts: Facts) -> tuple[Status, str]:
    sources = [m.get("Source", "") for m in facts.mounts if m.get("Type") == "bind"]
    bad = [s for s in sources
           if any(s == d or s.startswith(d.rstrip("/") + "/") for d in SENSITIVE_HOST_DIRS)]
    return verdict(not bad, f"{len(sources)} host path(s) mounted", f"mounts {bad}")


@check("5.6", "sshd is not run within containers")
def sshd(facts: Facts) -> tuple[Status, str]:
    return verdict("sshd" not in facts.processes, f"processes: {', '.join(facts.processes)}",
                   "sshd is running")


@check("5.7", "privileged ports are not mapped")
def privileged_ports(facts: Facts) -> tuple[Status, str]:
    low = [p["HostPort"] for p in facts.published_ports if int(p.get("HostPort") or 0) < 1024]
    return verdict(not low, "no privileged host port", f"maps host ports {low}")


@check("5.8", "only needed ports are open")
def open_ports(facts: Facts) -> tuple[Status, str]:
    exposed = list((facts.inspect["Config"].get("ExposedPorts") or {}).keys())
    return verdict(not exposed and not facts.published_ports, "no port exposed or published",
                   f"exposes {exposed}")


@check("5.9", "the host's network namespace is not shared")
def host_network(facts: Facts) -> tuple[Status, str]:
    mode = facts.host.get("NetworkMode")
    return verdict(mode != "host", f"network mode {mode}", "shares the host's network")


@check("5.10", "memory usage is limited")
def memory(facts: Facts) -> tuple[Status, str]:
    limit = facts.host.get("Memory") or 0
    return verdict(limit > 0, f"{limit // (1 << 20)} MiB", "no memory limit")


@check("5.11", "CPU priority is set appropriately")
def cpu(facts: Facts) -> tuple[Status, str]:
    shares = facts.host.get("CpuShares") or 0
    cpus = (facts.host.get("NanoCpus") or 0) / 1e9
    return verdict(shares not in (0, 1024), f"cpu shares {shares}, {cpus:g} cpus", "default CPU shares")


@check("5.12", "the root filesystem is mounted read only")
def read_only_root(facts: Facts) -> tuple[Status, str]:
    return verdict(bool(facts.host.get("ReadonlyRootfs")), "read-only root", "writable root")


@check("5.13", "incoming traffic is bound to a specific host interface")
def bound_interface(facts: Facts) -> tuple[Status, str]:
    wildcard = [p for p in facts.published_ports if p.get("HostIp") in ("", "0.0.0.0", "::")]
    return verdict(not wildcard, "nothing published on a wildcard address", f"publishes {wildcard}")


@check("5.14", "the 'on-failure' restart policy is set to 5")
def restart_policy(facts: Facts) -> tuple[Status, str]:
    policy = facts.host.get("RestartPolicy") or {}
    name, retries = policy.get("Name"), policy.get("MaximumRetryCount")
    return verdict(name == "on-failure" and retries == 5, f"{name}:{retries}",
                   f"restart policy {name}:{retries}")


@check("5.15", "the host's process namespace is not shared")
def pid_namespace(facts: Facts) -> tuple[Status, str]:
    return verdict(facts.host.get("PidMode") != "host", "private pid namespace", "host pid namespace")


@check("5.16", "the host's IPC namespace is not shared")
def ipc_namespace(facts: Facts) -> tuple[Status, str]:
    mode = facts.host.get("IpcMode")
    return verdict(mode != "host", f"ipc mode {mode}", "host IPC namespace")


@check("5.17", "host devices are not directly exposed")
def devices(facts: Facts) -> tuple[Status, str]:
    exposed = facts.host.get("Devices") or []
    return verdict(not exposed, "no host device", f"exposes {exposed}")


@check("5.18", "the default ulimit is overridden where needed")
def ulimits(facts: Facts) -> tuple[Status, str]:
    limits = {u["Name"]: u["Hard"] for u in facts.host.get("Ulimits") or []}
    return verdict(bool(limits), ", ".join(f"{k}={v}" for k, v in limits.items()), "no ulimits set")


@check("5.19", "mount propagation is not shared")
def propagation(facts: Facts) -> tuple[Status, str]:
    shared = [m.get("Destination") for m in facts.mounts if "shared" in (m.get("Propagation") or "")]
    return verdict(not shared, "no shared mount", f"shared mounts {shared}")


@check("5.20", "the host's UTS namespace is not shared")
def uts_namespace(facts: Facts) -> tuple[Status, str]:
    return verdict(facts.host.get("UTSMode") != "host", "private UTS namespace", "host UTS namespace")


@check("5.21", "the default seccomp profile is not disabled")
def seccomp(facts: Facts) -> tuple[Status, str]:
    options = facts.host.get("SecurityOpt") or []
    unconfined = any(o.replace("=", ":") == "seccomp:unconfined" for o in options)
    on = facts.engine_has("seccomp")
    return verdict(on and not unconfined, "the engine's default seccomp profile",
                   "seccomp is off" if not on else "seccomp unconfined")


@check("5.22", "docker exec is not used with --privileged")
def exec_privileged(facts: Facts) -> tuple[Status, str]:
    bad = [e["ID"][:12] for e in facts.exec_sessions if e.get("ProcessConfig", {}).get("privileged")]
    return verdict(not bad, f"{len(facts.exec_sessions)} exec session(s) open, none privileged",
                   f"privileged exec sessions {bad}")


@check("5.23", "docker exec is not used with --user=root")
def exec_root(facts: Facts) -> tuple[Status, str]:
    default = facts.inspect["Config"].get("User") or "root"
    users = [(e["ID"][:12], e.get("ProcessConfig", {}).get("user") or default) for e in facts.exec_sessions]
    bad = [i for i, user in users if user.split(":")[0] in ("root", "0")]
    return verdict(not bad, f"{len(users)} exec session(s) open, none as root",
                   f"exec sessions as root {bad}")


@check("5.24", "the cgroup parent is the engine's default")
def cgroup_parent(facts: Facts) -> tuple[Status, str]:
    parent = facts.host.get("CgroupParent") or ""
    return verdict(not parent, "default cgroup parent", f"cgroup parent {parent}")


@check("5.25", "the container can't acquire additional privileges")
def no_new_privileges(facts: Facts) -> tuple[Status, str]:
    options = [o.replace("=", ":") for o in facts.host.get("SecurityOpt") or []]
    on = any(o in ("no-new-privileges", "no-new-privileges:true") for o in options)
    return verdict(on, "no-new-privileges", "no-new-privileges is not set")


@check("5.26", "container health is checked at runtime")
def health(facts: Facts) -> tuple[Status, str]:
    status = (facts.inspect["State"].get("Health") or {}).get("Status")
    return verdict(status == "healthy", "healthy",
                   f"health {status}" if status else "no health check")


@check("5.28", "the PIDs cgroup limit is used")
def pids(facts: Facts) -> tuple[Status, str]:
    limit = facts.host.get("PidsLimit") or 0
    return verdict(limit > 0, f"{limit} processes", "no pids limit")


@check("5.29", "Docker's default bridge docker0 is not used")
def default_bridge(facts: Facts) -> tuple[Status, str]:
    networks = list((facts.inspect["NetworkSettings"].get("Networks") or {}).keys())
    return verdict("bridge" not in networks, f"networks {networks}", "on the default bridge")


@check("5.30", "the host's user namespace is not shared")
def user_namespace(facts: Facts) -> tuple[Status, str]:
    return verdict(facts.host.get("UsernsMode") != "host", "not the host's user namespace",
                   "host user namespace")


@check("5.31", "the Docker socket is not mounted")
def docker_socket(facts: Facts) -> tuple[Status, str]:
    sockets = [m.get("Source") for m in facts.mounts if "docker.sock" in (m.get("Source") or "")]
    return verdict(not sockets, "no Docker socket", f"mounts {sockets}")


def gather(client: docker.DockerClient, container_id: str) -> Facts:
    inspect = client.api.inspect_container(container_id)
    sessions = [client.api.exec_inspect(i) for i in inspect.get("ExecIDs") or []]
    # As the benchmark's audit does, by exec: what runs in the container, seen from inside.
    listing = client.containers.get(container_id).exec_run(["/bin/sh", "-c", "cat /proc/[0-9]*/comm"])
    return Facts(
        inspect=inspect,
        security_options=client.info().get("SecurityOptions") or [],
        processes=sorted(set(listing.output.decode(errors="replace").split())),
        exec_sessions=sessions,
    )


def audit(container_id: str, client: docker.DockerClient | None = None) -> list[Finding]:
    facts = gather(client or connect_engine(), container_id)
    return [Finding(id, title, *function(facts)) for id, title, function in CHECKS]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tether.sandbox.cis CONTAINER", file=sys.stderr)
        return 2
    findings = audit(argv[0])
    for f in findings:
        print(f"{f.id:<5} {f.status:<15} {f.title}: {f.detail}")
    return 1 if any(f.status == "warn" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
