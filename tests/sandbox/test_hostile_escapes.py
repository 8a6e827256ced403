"""Hostile inputs that try to reach past the sandbox: the network, the host's environment and
secrets, the Docker socket, another run's files, the filesystem outside the workspace, and
privileges. Each runs as a real AgentRun beside a benign one (`attack`), under runc and under
gVisor (runsc)."""

from __future__ import annotations

import json
import os
import socket
import uuid

import pytest
from temporalio.client import Client
from tether import client as tether
from tether.contracts import names

from tests.helpers import wait_for
from tests.sandbox.attacks import RUNTIMES, attack, gvisor, require, tool_results
from tests.scripts import scripted_run, turn

pytestmark = pytest.mark.parametrize("runtime", RUNTIMES)

NETWORK = """
import errno, json, os, socket, time
seen = {"interfaces": sorted(os.listdir("/sys/class/net"))}
for name, address in [("host_loopback", ("127.0.0.1", PORT)), ("public", ("1.1.1.1", 443))]:
    s = socket.socket()
    s.settimeout(5)
    started = time.monotonic()
    try:
        s.connect(address)
        seen[name] = "connected"
    except OSError as error:
        seen[name] = errno.errorcode.get(error.errno, str(error))
    seen[name + "_seconds"] = time.monotonic() - started
print(json.dumps(seen))
"""


async def test_the_network_is_none_the_hosts_loopback_unreachable_and_a_public_connect_fails_fast(
    temporal_client: Client, worker: str, runtime: str, temporal_address: str
):
    port = int(temporal_address.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # from the host, the Temporal frontend answers on loopback
    [probe] = await attack(temporal_client, worker, turn(python=NETWORK.replace("PORT", str(port))),
                           runtime=runtime)
    seen = json.loads(probe.stdout)
    assert seen["interfaces"] == ["lo"]
    # The sandbox's loopback is its own: nothing of the host's listens there.
    assert seen["host_loopback"] == "ECONNREFUSED"
    # No route at all: the connect fails before a packet could leave (gVisor's own network
    # stack says so as "host unreachable").
    assert seen["public"] == ("EHOSTUNREACH" if gvisor(runtime) else "ENETUNREACH")
    assert seen["public_seconds"] < 1


ENVIRONMENT = """
import glob, json, os
environs = {}
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        environs[path] = open(path, "rb").read().decode(errors="replace")
    except OSError:
        pass
print(json.dumps({"env": dict(os.environ), "environs": environs,
                  "data_dir": os.path.exists(DATA_DIR)}))
"""


async def test_the_hosts_environment_and_the_workers_secrets_stay_out(
    temporal_client: Client, worker: str, runtime: str, monkeypatch: pytest.MonkeyPatch
):
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("TETHER_TEST_SECRET", secret)  # in the worker's own environment
    data_dir = os.environ["TETHER_DATA_DIR"]  # where the worker keeps its store
    [probe] = await attack(
        temporal_client, worker, turn(python=ENVIRONMENT.replace("DATA_DIR", repr(data_dir))),
        runtime=runtime)
    seen = json.loads(probe.stdout)
    assert secret not in probe.stdout + probe.stderr
    assert sorted(seen["env"]) == ["HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE",
                                   "PYTHONUNBUFFERED", "TETHER_IDEMPOTENCY_KEY", "TMPDIR"]
    assert seen["environs"], "the processes' environments were readable"
    for host_name in ("TEMPORAL_ADDRESS", "TETHER_WORKER_ID", "TETHER_DATA_DIR", "DOCKER_HOST"):
        assert all(host_name not in text for text in seen["environs"].values()), host_name
    assert seen["data_dir"] is False


DOCKER_SOCKET = """
import json, os, socket, stat
sockets = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys")]
    for name in files:
        path = os.path.join(top, name)
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                sockets.append(path)
        except OSError:
            pass
attempts = {}
for path in ("/var/run/docker.sock", "/run/docker.sock"):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        attempts[path] = "connected"
    except OSError as error:
        attempts[path] = type(error).__name__
print(json.dumps({"sockets": sockets, "attempts": attempts,
                  "docker_host": os.environ.get("DOCKER_HOST")}))
"""


async def test_there_is_no_docker_socket_to_find(temporal_client: Client, worker: str, runtime: str):
    [probe] = await attack(temporal_client, worker, turn(python=DOCKER_SOCKET),
                           sandbox={"tool_timeout_seconds": 30}, runtime=runtime)
    seen = json.loads(probe.stdout)
    assert seen == {"sockets": [], "docker_host": None, "attempts": {
        "/var/run/docker.sock": "FileNotFoundError", "/run/docker.sock": "FileNotFoundError"}}


SEARCH = """
import json, os, stat
found = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    for name in files:
        path = os.path.join(top, name)
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                with open(path, "rb") as f:
                    if TOKEN in f.read(1 << 20):
                        found.append(path)
        except OSError:
            pass
names = [open(f"/proc/{p}/comm").read().strip() for p in os.listdir("/proc") if p.isdigit()]
print(json.dumps({"found": found, "workspace": os.listdir("/workspace"), "processes": names}))
"""


async def test_a_run_cannot_read_another_runs_workspace(temporal_client: Client, worker: str, runtime: str):
    token = f"token-{uuid.uuid4().hex}"
    victim = await tether.start_run(temporal_client, scripted_run(
        "victim", turn(write_file={"path": "secret.txt", "content": token}),
        turn(shell="sleep 20"), turn("done"), sandbox={"runtime": require(runtime)}), task_queue=worker)

    async def victim_wrote() -> bool:
        return len(await tool_results(temporal_client, victim)) >= 1

    await wait_for(victim_wrote, what="the victim to write its secret")
    # The search holds the token only in its own code, which lives in no file it can read.
    code = SEARCH.replace("TOKEN", repr(token.encode()))
    [search] = await attack(temporal_client, worker, turn(python=code),
                            sandbox={"tool_timeout_seconds": 30}, runtime=runtime)
    seen = json.loads(search.stdout)
    assert seen["found"] == [] and seen["workspace"] == []
    assert "sleep" not in seen["processes"]  # the victim's `sleep 20` is in another pid namespace
    assert token not in search.stdout
    await victim.execute_update(names.UPDATE_CANCEL, "the test is over")
    assert (await victim.result()).status == "cancelled"


ESCAPES = """
for p in /x /etc/x /usr/x /opt/tether/executor/__main__.py /var/x; do touch "$p" 2>&1; done
printf '#!/bin/sh\\necho ran\\n' > /tmp/run.sh && chmod +x /tmp/run.sh && /tmp/run.sh 2>&1
ln -s /etc /workspace/etc-link && ln -s /etc/passwd /workspace/passwd-link && echo linked
"""


async def test_writing_outside_the_workspace_is_refused(
    temporal_client: Client, worker: str, runtime: str
):
    shell, *files = await attack(
        temporal_client, worker,
        turn(shell=ESCAPES),
        turn(write_file=[{"path": "../etc/evil", "content": "x"},
                         {"path": "/etc/evil", "content": "x"},
                         {"path": "etc-link/evil", "content": "x"},
                         {"path": "sub/../../evil", "content": "x"}],
             read_file=["passwd-link", "../etc/passwd", "etc-link/passwd", "/proc/1/environ"]),
        runtime=runtime,
    )
    lines = shell.stdout.splitlines()
    # The root is read-only; the executor's own file is also root's. (gVisor checks the
    # permission before the read-only mount, and says so.)
    assert sum(line.startswith("touch: cannot touch") for line in lines) == 5, shell.stdout
    refusal = "Permission denied" if gvisor(runtime) else "Read-only file system"
    assert sum(line.endswith(refusal) for line in lines) >= 4, shell.stdout
    assert any("/tmp/run.sh: Permission denied" in line for line in lines), shell.stdout
    assert lines[-1] == "linked"
    for result in files:
        assert result.exit_code == 1
        assert "is outside /workspace" in result.stderr, result
        assert result.stdout == ""


CAPABILITIES = """
import ctypes, errno, json, os, socket, stat
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
seen = {key: status.get(key, "").strip() for key in
        ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}
seen["uid"] = os.getuid()
seen["setuid_files"] = []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys")]
    for name in files:
        try:
            mode = os.lstat(os.path.join(top, name)).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
            seen["setuid_files"].append(os.path.join(top, name))
libc = ctypes.CDLL(None, use_errno=True)

def attempt(action):
    try:
        if action() == -1:
            return errno.errorcode[ctypes.get_errno()]
        return "allowed"
    except OSError as error:
        return errno.errorcode[error.errno]

open("/workspace/mine", "w").close()
seen["chown_to_root"] = attempt(lambda: os.chown("/workspace/mine", 0, 0))
seen["mknod"] = attempt(lambda: os.mknod("/workspace/mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)))
seen["open_mem"] = attempt(lambda: os.open("/workspace/mem", os.O_RDONLY))
seen["raw_socket"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
seen["setuid_0"] = attempt(lambda: os.setuid(0))
seen["new_user_namespace"] = attempt(lambda: libc.unshare(0x10000000))
seen["mount"] = attempt(lambda: libc.mount(b"none", b"/workspace", b"tmpfs", 0, None))
print(json.dumps(seen))
"""


async def test_setuid_and_capability_tricks_find_nothing_to_escalate_through(
    temporal_client: Client, worker: str, runtime: str
):
    [probe] = await attack(temporal_client, worker, turn(python=CAPABILITIES),
                           sandbox={"tool_timeout_seconds": 30}, runtime=runtime)
    seen = json.loads(probe.stdout)
    assert seen["uid"] == 10001
    assert seen["setuid_files"] == []
    tricks = ["chown_to_root", "mknod", "raw_socket", "setuid_0", "new_user_namespace", "mount"]
    if gvisor(runtime):
        # The tools' system calls reach gVisor's own kernel, not the host's: it reports no
        # ambient set, no-new-privileges or seccomp filter (the host's filter is on gVisor).
        # It lets a process make a device node or a user namespace of its own, inside it: the
        # node opens none of the host's devices. The bounding set is the executor's (it runs
        # as a uid of its own there, with five capabilities): what a process could ever gain,
        # and with no setuid file and no file capability to gain it through, tools hold none.
        for capabilities in ("CapInh", "CapPrm", "CapEff"):
            assert int(seen[capabilities], 16) == 0, capabilities
        bounding = {bit for bit in range(64) if int(seen["CapBnd"], 16) >> bit & 1}
        assert bounding == {0, 1, 5, 6, 7}  # CHOWN, DAC_OVERRIDE, KILL, SETGID, SETUID
        assert seen["mknod"] == "allowed" and seen["open_mem"] == "ENXIO"
        assert seen["new_user_namespace"] == "allowed"
        tricks = [t for t in tricks if t not in ("mknod", "new_user_namespace")]
    else:
        for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(seen[capabilities], 16) == 0, capabilities
        assert seen["NoNewPrivs"] == "1"
        assert seen["Seccomp"] == "2"  # the engine's default seccomp filter
        assert seen["open_mem"] == "ENOENT"  # never made
    for trick in tricks:
        assert seen[trick] == "EPERM", (trick, seen[trick])
