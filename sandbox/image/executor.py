"""tether's in-container executor: the sandbox's main process.

It reads one JSON request a line on stdin and writes one JSON response a line on stdout,
over the container's attached stream: no network, no host mount, no `docker exec` per call.
Standard library only, so it runs on any image with python3.

Guarantees it gives the host:
- exactly once: a request carries an idempotency key; a key already finished returns its
  recorded result, a key still running is awaited, and no key ever runs twice;
- a timeout or a cancel kills the call's whole process group, and when no call is running,
  every process the calls left behind (daemons, `setsid` escapees) is killed too, and gone,
  before the call's result is sent;
- output is capped while it is read: head and tail kept, the middle counted and dropped;
- a container taken from a warm pool is bound to one run, once: it never serves another;
- a tool that runs out of memory is killed, not the executor: the executor lowers its own OOM
  score and starts every tool at the highest, and the memory-backed workspace has room of
  its own beside `memory_mb` (the host sizes the container so);
- no tool reaches the host's stream: the executor is the container's init (PID 1), the only
  process holding the stream, and not dumpable, so its /proc entries (file descriptors,
  memory) are root's, and a process of its namespace can neither trace nor signal it. As
  init it also reaps every orphan the tools leave.
"""

from __future__ import annotations

import base64
import collections
import ctypes
import json
import os
import queue
import re
import selectors
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

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
EGRESS_PORT = 3128
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

_out_lock = threading.Lock()
_children_lock = threading.Lock()
"""Held while a process is started and while orphans are reaped: the reaper must never reap a
child whose `Popen` is still to learn its exit status."""
_children: set[int] = set()
"""The pids of the processes this executor started and still waits for (tools, MCP servers)."""
_child_exited = threading.Event()

# cgroup v1 and v2 paths of the counters that say a limit was hit during a call.
OOM_KILLS = (("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
             ("/sys/fs/cgroup/memory.events", "oom_kill"))
PIDS_REFUSED = (("/sys/fs/cgroup/pids/pids.events", "max"), ("/sys/fs/cgroup/pids.events", "max"))
MEMORY_LIMIT = ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
PIDS_LIMIT = ("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")


def send(message: dict) -> None:
    line = json.dumps(message, separators=(",", ":")) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


class CappedBuffer:
    """Keeps the first and last `limit // 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(1, limit // 2)
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail.append(chunk)
            self.tail_size += len(chunk)
            while self.tail_size - len(self.tail[0]) >= self.half:
                self.tail_size -= len(self.tail.popleft())

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(self.tail_size, self.half)

    def text(self) -> str:
        tail = b"".join(self.tail)[-self.half:]
        if not self.truncated:
            return (bytes(self.head) + tail).decode("utf-8", "replace")
        dropped = self.total - len(self.head) - len(tail)
        marker = f"\n[... {dropped} bytes cut by tether ...]\n".encode()
        return (bytes(self.head) + marker + tail).decode("utf-8", "replace")


def _collect(process, stdin: bytes, buffers: dict, timeout: float) -> bool:
    """Feeds `stdin` to the process and reads its outputs into `buffers` until they close or
    the timeout passes; True if it passed. One thread does it all: a call that exhausts the
    pids limit can't stop its own output from being read.

    When the group's leader exits, the group is killed at once, so background children can't
    hold the outputs open; a `setsid` escapee still may, for a moment, before the sweep."""
    deadline = time.monotonic() + timeout
    pending = memoryview(stdin)
    writer = process.stdin
    assert writer is not None  # Popen(stdin=PIPE)
    with selectors.DefaultSelector() as selector:
        for pipe in buffers:
            selector.register(pipe, selectors.EVENT_READ)
        if pending:
            os.set_blocking(writer.fileno(), False)
            selector.register(writer, selectors.EVENT_WRITE, data="stdin")
        else:
            writer.close()
        while any(key.events == selectors.EVENT_READ for key in selector.get_map().values()):
            now = time.monotonic()
            if process.poll() is not None and deadline > now + LEADER_GONE_GRACE:
                _killpg(process.pid)
                deadline = now + LEADER_GONE_GRACE
            if now >= deadline:
                return process.poll() is None
            for key, _ in selector.select(min(deadline - now, 0.05)):
                if key.data == "stdin":
                    try:
                        pending = pending[os.write(writer.fileno(), pending[:65536]):]
                    except OSError:  # the tool stopped reading: what it didn't take is dropped
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(writer)
                        writer.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    buffers[key.fileobj].add(chunk)
                else:
                    selector.unregister(key.fileobj)
    return False


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


class ServerEnded(RuntimeError):
    """The MCP server exited, or wrote more than a session may."""


class McpServer:
    """An MCP stdio server process, fed one JSON-RPC line at a time."""

    def __init__(self, process: subprocess.Popen) -> None:
        assert process.stdin is not None and process.stdout is not None  # opened with pipes
        self.process = process
        self.stdin, self.stdout = process.stdin, process.stdout
        self.lines: queue.Queue = queue.Queue()
        self.write_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        read = 0
        for raw in self.stdout:
            read += len(raw)
            if read > MCP_SESSION_BYTES:
                self.lines.put(ServerEnded(f"the server wrote over {MCP_SESSION_BYTES} bytes"))
                return
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(ServerEnded(f"the server exited (code {_wait(self.process)})"))

    def exchange(self, line: str, expect, timeout: float) -> dict:
        """Writes one message; for a request (`expect` is its id), returns every line the
        server wrote until its answer."""
        with self.write_lock:
            self.stdin.write(line.encode() + b"\n")
            self.stdin.flush()
        got = []
        deadline = time.monotonic() + timeout
        while expect is not None:
            try:
                item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"the server did not answer within {timeout:g} s") from None
            if isinstance(item, ServerEnded):
                raise item
            got.append(item)
            try:
                message = json.loads(item)
            except ValueError:
                continue
            if (isinstance(message, dict) and message.get("id") == expect
                    and ("result" in message or "error" in message)):
                break
        return {"lines": got}

    def stop(self) -> None:
        _killpg(self.process.pid)
        _wait(self.process)


class Call:
    """One tool call in flight, keyed by its idempotency key."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.done = threading.Event()
        self.result: dict | None = None
        self.process: subprocess.Popen | None = None
        self.cancelled = False
        self.joiners: list[object] = []
        """Ids of later requests for the same key, answered with this call's result."""

    def kill(self) -> None:
        self.cancelled = True
        if self.process is not None:
            _killpg(self.process.pid)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class Executor:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, Call] = {}
        self.finished: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self.forgotten: set[str] = set()
        self.finished_bytes = 0
        self.ledger_bytes = _ledger_bytes()
        self.running = 0
        self.binding: dict | None = None
        self.servers: dict[str, McpServer] = {}
        """MCP stdio servers open, by session: no sweep runs while one is."""

    def bind(self, request: dict) -> None:
        """Records the run this container serves. A warm-pool container learns its run here
        (Docker can't relabel a container); binding it to a second run is refused."""
        identity = {"workflow_id": str(request.get("workflow_id", "")),
                    "run_id": str(request.get("run_id", ""))}
        if self.binding is None and identity["workflow_id"]:
            self.binding = dict(identity, since=str(request.get("since", "")))
        if self.binding is not None and all(self.binding[k] == v for k, v in identity.items()):
            send({"id": request.get("id"), "ok": True, "result": {"binding": self.binding}})
        else:
            send({"id": request.get("id"), "ok": False,
                  "error": f"this sandbox serves {self.binding}, not {identity}"})

    # --- requests -------------------------------------------------------------------
    def handle(self, request: dict) -> None:
        op = request.get("op")
        if op == "ping":
            send({"id": request.get("id"), "ok": True,
                  "result": {"pid": os.getpid(), "binding": self.binding}})
        elif op == "bind":
            self.bind(request)
        elif op == "run":
            if self.answered_without_a_thread(request):
                return
            try:
                threading.Thread(target=self.run, args=(request,), daemon=True).start()
            except RuntimeError as error:  # the pids limit is reached: not even a thread starts
                send({"id": request.get("id"), "ok": False,
                      "error": f"the sandbox is at its process limit, the call can't start: {error}"})
        elif op in ("mcp_open", "mcp_send", "mcp_close"):
            threading.Thread(target=self.mcp, args=(op, request), daemon=True).start()
        elif op in WORKSPACE_OPS:
            threading.Thread(target=_workspace_op, args=(op, request), daemon=True).start()
        elif op == "cancel":
            with self.lock:
                call = self.calls.get(request.get("key", ""))
            if call:
                call.kill()
            send({"id": request.get("id"), "ok": True, "result": {"cancelled": bool(call)}})
        else:
            send({"id": request.get("id"), "ok": False, "error": f"unknown op {op!r}"})

    # --- MCP stdio servers --------------------------------------------------------------
    def mcp(self, op: str, request: dict) -> None:
        # A session is one call's (or one listing's) own server: two calls at once to the same
        # server never share its process, its output or its JSON-RPC ids. Hosts from before
        # sessions send the server's name alone.
        session = str(request.get("session") or request.get("name", ""))
        try:
            if op == "mcp_open":
                result = self.open_server(session, [str(part) for part in request.get("argv") or []])
            elif op == "mcp_send":
                server = self.servers.get(session)
                if server is None:
                    raise ServerEnded(f"no MCP session {session!r} is open")
                result = server.exchange(str(request.get("line", "")), request.get("expect"),
                                         float(request.get("timeout", 60)))
            else:
                result = self.close_server(session)
        except (OSError, TimeoutError, ServerEnded) as error:
            send({"id": request.get("id"), "ok": False, "error": str(error) or type(error).__name__})
            return
        send({"id": request.get("id"), "ok": True, "result": result})

    def open_server(self, session: str, argv: list) -> dict:
        """Starts the session's server, as a tool is started; one that a crashed worker left
        under the same session (the same call, retried) is replaced."""
        self.close_server(session)
        with self.lock:
            self.running += 1
        try:
            process = _start([*TOOL_PRELUDE, *argv], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(CHILD_ENV))
        except OSError:
            self.server_closed()
            raise
        server = McpServer(process)
        with self.lock:
            replaced, self.servers[session] = self.servers.get(session), server
        if replaced is not None:  # two opens of one session raced: the later one stands
            replaced.stop()
            self.server_closed()
        return {"pid": process.pid}

    def close_server(self, session: str) -> dict:
        with self.lock:
            server = self.servers.pop(session, None)
        if server is None:
            return {"closed": False}
        server.stop()
        self.server_closed()
        return {"closed": True}

    def server_closed(self) -> None:
        with self.lock:
            self.running -= 1
            if self.running == 0:
                _kill_strays()

    def answered_without_a_thread(self, request: dict) -> bool:
        """A request for a key already finished is answered now, and one for a key still
        running joins that call, to be answered when it ends: neither needs a thread, which a
        call holding the sandbox at its process limit (a fork bomb) leaves none of."""
        key = request.get("key", "")
        with self.lock:
            recorded = self.finished.get(key)
            call = self.calls.get(key)
            if recorded is None and call is not None:
                call.joiners.append(request.get("id"))
                return True
        if recorded is None:
            return False
        send({"id": request.get("id"), "ok": True, "result": recorded, "replayed": True})
        return True

    def run(self, request: dict) -> None:
        key = request["key"]
        with self.lock:
            recorded = self.finished.get(key)
            call = self.calls.get(key)
            owner = recorded is None and call is None and key not in self.forgotten
            if owner:
                call = self.calls[key] = Call(key)
                self.running += 1
        if recorded is not None:
            send({"id": request["id"], "ok": True, "result": recorded, "replayed": True})
            return
        if call is None:
            send({"id": request["id"], "ok": False,
                  "error": f"call {key} ran already and its result is no longer kept"})
            return
        if not owner:
            call.done.wait()
            send({"id": request["id"], "ok": True, "result": call.result, "replayed": True})
            return
        try:
            call.result = self.execute(call, request)
        except Exception as error:  # a bug here must not take the sandbox down
            call.result = _result(1, stderr=f"tether executor error: {error!r}")
        finally:
            joiners = self.finish(call)
        send({"id": request["id"], "ok": True, "result": call.result})
        for joiner in joiners:
            send({"id": joiner, "ok": True, "result": call.result, "replayed": True})

    def finish(self, call: Call) -> list[object]:
        """Records the call's result; returns the requests that joined it, to be answered."""
        with self.lock:
            self.running -= 1
            del self.calls[call.key]
            joiners, call.joiners = call.joiners, []
            self.finished[call.key] = call.result or {}
            self.finished_bytes += _result_bytes(self.finished[call.key])
            # The newest result stays whatever its size: its own retry must still find it.
            while len(self.finished) > 1 and (len(self.finished) > LEDGER_RESULTS_KEPT
                                              or self.finished_bytes > self.ledger_bytes):
                old, result = self.finished.popitem(last=False)
                self.finished_bytes -= _result_bytes(result)
                self.forgotten.add(old)
            idle = self.running == 0
            call.done.set()
            # Leftovers (daemons, setsid escapees) die only when no other call could own them.
            if idle:
                _kill_strays()
        return joiners

    # --- tools ----------------------------------------------------------------------
    def execute(self, call: Call, request: dict) -> dict:
        kind, args = request["kind"], request.get("args") or {}
        limit = int(request.get("limit", 65536))
        if kind == "read_file":
            return _read_file(str(args.get("path", "")), limit)
        if kind == "write_file":
            return _write_file(str(args.get("path", "")), str(args.get("content", "")))
        if kind == "python":
            argv, stdin = ["python3", "-"], str(args.get("code", "")).encode()
        elif kind == "shell":
            argv, stdin = ["/bin/sh", "-c", str(args.get("command", ""))], b""
        else:
            return _result(2, stderr=f"unknown tool {kind!r}")
        env = dict(CHILD_ENV, TETHER_IDEMPOTENCY_KEY=call.key)
        return self.spawn(call, [*TOOL_PRELUDE, *argv], stdin, env,
                          float(request.get("timeout", 60)), limit)

    def spawn(self, call, argv, stdin, env, timeout, limit) -> dict:
        started = time.monotonic()
        oom_before, refused_before = _counter(OOM_KILLS), _counter(PIDS_REFUSED)
        process = _start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
        call.process = process
        if call.cancelled:
            call.kill()
        out, err = CappedBuffer(limit), CappedBuffer(limit)
        try:
            timed_out = _collect(process, stdin, {process.stdout: out, process.stderr: err}, timeout)
        finally:
            _killpg(process.pid)  # whatever happened, the call's group doesn't outlive it
            _wait(process)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        code = _exit_code(process.returncode)
        stderr = err.text()
        if timed_out:
            stderr += f"\n[tether: killed after the {timeout:g} s tool timeout]"
        elif call.cancelled:
            stderr += "\n[tether: cancelled]"
        stderr += _limit_notes(oom_before, refused_before)
        if ADDRESS_SPACE_MB and code != 0 and any(sign in stderr for sign in OUT_OF_MEMORY):
            stderr += (f"\n[tether: a process ran out of memory at the sandbox's limit"
                       f" ({ADDRESS_SPACE_MB} MiB per process)]")
        return _result(
            code, stdout=out.text(), stderr=stderr, truncated=out.truncated or err.truncated,
            timed_out=timed_out, duration_ms=int((time.monotonic() - started) * 1000),
        )


def _ledger_bytes() -> int:
    """What the ledger of finished results may hold: 64 MiB, and at most a quarter of the
    memory the host gave the sandbox, so old results can't crowd out the tools."""
    if MEMORY_MB.isdigit():
        return min(LEDGER_MAX_BYTES, int(MEMORY_MB) * (1 << 20) // 4)
    return LEDGER_MAX_BYTES


def _result_bytes(result: dict) -> int:
    """About what a recorded result holds in memory: its text, and a little for the rest."""
    return 256 + sum(len(value) for value in result.values() if isinstance(value, str))


def _result(exit_code, *, stdout="", stderr="", truncated=False, timed_out=False, duration_ms=0):
    return {"exit_code": exit_code, "stdout": stdout, "stderr": stderr, "truncated": truncated,
            "timed_out": timed_out, "duration_ms": duration_ms}


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


def _confined(path: str) -> str | None:
    """The absolute path inside the workspace, or None if it points (or links) outside."""
    full = os.path.normpath(os.path.join(WORKSPACE, path))
    real = os.path.realpath(full)
    inside = (WORKSPACE, WORKSPACE + os.sep)
    if (full == WORKSPACE or full.startswith(inside[1])) and (
        real == WORKSPACE or real.startswith(inside[1])
    ):
        return full
    return None


def _read_file(path: str, limit: int) -> dict:
    started = time.monotonic()
    full = _confined(path)
    if full is None:
        return _result(1, stderr=f"read_file: {path!r} is outside /workspace")
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not os.path.isfile(full):
                return _result(1, stderr=f"read_file: {path!r} is not a regular file")
            data = f.read(limit + 1)
    except OSError as error:
        return _result(1, stderr=f"read_file: {path!r}: {error.strerror}")
    return _result(0, stdout=data[:limit].decode("utf-8", "replace"), truncated=len(data) > limit,
                   duration_ms=int((time.monotonic() - started) * 1000))


def _make_dirs(full: str) -> None:
    """`os.makedirs`, each directory it makes given to the tools."""
    if os.path.isdir(full):
        return
    _make_dirs(os.path.dirname(full))
    try:
        os.mkdir(full, 0o755)
    except FileExistsError:
        return
    _give_to_tools(full)


def _write_file(path: str, content: str) -> dict:
    started = time.monotonic()
    full = _confined(path)
    if full is None or full == WORKSPACE:
        return _result(1, stderr=f"write_file: {path!r} is outside /workspace")
    data = content.encode()
    if len(data) > MAX_WRITE_BYTES:
        return _result(1, stderr=f"write_file: {len(data)} bytes is over the {MAX_WRITE_BYTES} limit")
    try:
        _make_dirs(os.path.dirname(full))
        if _confined(os.path.relpath(full, WORKSPACE)) is None:
            return _result(1, stderr=f"write_file: {path!r} is outside /workspace")
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as f:
            _give_to_tools(f.fileno())
            f.write(data)
    except OSError as error:
        return _result(1, stderr=f"write_file: {path!r}: {error.strerror}")
    return _result(0, stdout=f"wrote {len(data)} bytes to {os.path.relpath(full, WORKSPACE)}",
                   duration_ms=int((time.monotonic() - started) * 1000))


# --- files in, artifacts out ---------------------------------------------------------
# The host places a run's files and takes its artifacts through these ops. The workspace is
# hostile by then: every path is opened one component at a time beneath /workspace with
# O_NOFOLLOW, so no symlink (nor one swapped in mid-way) leads out, and only regular files
# with one name are read: a hard link could name a file the run should not hand out.

def _workspace_op(op: str, request: dict) -> None:
    try:
        result = WORKSPACE_OPS[op](request)
    except (OSError, ValueError) as error:
        send({"id": request.get("id"), "ok": False, "error": str(error) or type(error).__name__})
        return
    send({"id": request.get("id"), "ok": True, "result": result})


def _parts(path: str) -> list:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"{path!r} is not a name inside /workspace")
    return parts


def _open_beneath(path: str, flags: int, *, make_dirs: bool = False) -> int:
    """Opens `path` under the workspace without following any symlink on the way."""
    parts = _parts(path)
    directory = os.open(WORKSPACE, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            if make_dirs:
                try:
                    os.mkdir(part, 0o755, dir_fd=directory)
                    _give_to_tools(part, dir_fd=directory)
                except FileExistsError:
                    pass
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644, dir_fd=directory)
    finally:
        os.close(directory)


def _put_file(request: dict) -> dict:
    """Writes (or, with `append`, adds to) one file the host places before the first call."""
    data = base64.b64decode(request.get("data", ""))
    append = bool(request.get("append"))
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = _open_beneath(str(request.get("path", "")), flags, make_dirs=True)
    with os.fdopen(fd, "wb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{request.get('path')!r} is not a regular file")
        _give_to_tools(f.fileno())
        if f.tell() + len(data) > MAX_WRITE_BYTES:
            raise ValueError(f"{request.get('path')!r} would be over the {MAX_WRITE_BYTES}-byte limit")
        f.write(data)
        return {"size": f.tell()}


def _glob_pattern(glob: str):
    """`*` and `?` stay within one directory; a `**` part matches any number of them."""
    parts, out = glob.split("/"), ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out += ".*" if last else "(?:[^/]*/)*"
            continue
        out += "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
        out += "" if last else "/"
    return re.compile(out + r"\Z", re.DOTALL)


def _skip_reason(path: str, info: os.stat_result, max_bytes: int) -> str | None:
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(os.path.join(WORKSPACE, path))
        real = os.path.realpath(os.path.join(WORKSPACE, path))
        where = "inside" if real.startswith(WORKSPACE + os.sep) else "outside"
        return f"symbolic link to {target!r} ({where} the workspace): links are not followed"
    if stat.S_ISFIFO(mode):
        return "a fifo, not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file, not a regular file"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if info.st_nlink > 1:
        return f"a hard link ({info.st_nlink} names for one file): only files with one name are taken"
    if info.st_size > max_bytes:
        return f"{info.st_size} bytes is over the {max_bytes}-byte limit per artifact"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    if re.search(r"[\x00-\x1f\x7f\\]", path):
        return "its name holds a backslash or a control character"
    return None


def _list_artifacts(request: dict) -> dict:
    """Every workspace entry a glob matches, walked by lstat (links are never followed):
    regular files to take, and the others with the reason they are skipped. Bounded for a
    hostile workspace: at most `max_files` files and `max_skipped` skipped entries are listed
    (the rest counted), and at most `max_walked` entries looked at; past those the walk stops
    and `cut` says in which directory."""
    patterns = [_glob_pattern(str(g)) for g in request.get("globs") or []]
    prefixes = [_literal_prefix(str(g)) for g in request.get("globs") or []]
    max_bytes = int(request.get("max_bytes", MAX_WRITE_BYTES))
    max_files = int(request.get("max_files", LIST_MAX_FILES))
    max_skipped = int(request.get("max_skipped", LIST_MAX_SKIPPED))
    budget = max_walked = int(request.get("max_walked", LIST_MAX_WALKED))
    files: list[dict] = []
    skipped: list[dict] = []
    files_over = skipped_over = 0
    cut = None
    pending = [""]
    while pending and cut is None:
        directory = pending.pop()
        names, full = _names(directory, budget)
        budget -= len(names)
        if full:
            cut = {"path": os.fsencode(directory).decode("utf-8", "replace") or ".",
                   "walked": max_walked}
        for name in sorted(names):
            path = f"{directory}/{name}" if directory else name
            try:
                info = os.lstat(os.path.join(WORKSPACE, path))
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                # Only where a glob could match: a tree no glob reaches (node_modules beside
                # `out/*.txt`) costs the walk nothing.
                if any(path.startswith(p) or p.startswith(path + "/") for p in prefixes):
                    pending.append(path)
                continue
            if not any(p.match(path) for p in patterns):
                continue
            reason = _skip_reason(path, info, max_bytes)
            if reason and len(skipped) < max_skipped:
                # Shown as readable text: a name that is not UTF-8 can't cross JSON as it is.
                shown = os.fsencode(path).decode("utf-8", "replace")
                skipped.append({"path": shown, "reason": reason})
            elif reason:
                skipped_over += 1
            elif len(files) < max_files:
                files.append({"path": path, "size": info.st_size})
            else:
                files_over += 1
    return {"files": sorted(files, key=lambda f: f["path"]),
            "skipped": sorted(skipped, key=lambda f: f["path"]),
            "files_over": files_over, "skipped_over": skipped_over, "cut": cut}


def _names(directory: str, budget: int) -> tuple[list, bool]:
    """Up to `budget` names of a directory's entries, read one by one (a directory of
    millions is never held whole), and whether there were more."""
    names: list[str] = []
    try:
        with os.scandir(os.path.join(WORKSPACE, directory) or WORKSPACE) as entries:
            for entry in entries:
                if len(names) == budget:
                    return names, True
                names.append(entry.name)
    except OSError:
        pass
    return names, False


def _literal_prefix(glob: str) -> str:
    """The part of a glob before its first wildcard: every path it matches starts so."""
    cut = min((glob.index(c) for c in "*?" if c in glob), default=len(glob))
    return glob[:cut]


def _read_artifact(request: dict) -> dict:
    """A chunk of one listed file, checked again as it is opened: still a regular file with
    one name, within the limit."""
    path, max_bytes = str(request.get("path", "")), int(request.get("max_bytes", MAX_WRITE_BYTES))
    fd = _open_beneath(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        reason = _skip_reason(path, info, max_bytes)
        if reason:
            raise ValueError(reason)
        data = os.pread(f.fileno(), int(request.get("length", 1 << 20)), int(request.get("offset", 0)))
    return {"data": base64.b64encode(data).decode(), "size": info.st_size}


WORKSPACE_OPS = {"file_put": _put_file, "artifact_list": _list_artifacts,
                 "artifact_read": _read_artifact}


# --- the way out, where the run's policy allows one -------------------------------------
# The container has no network but its own loopback. Tools reach the host's egress proxy
# through the standard proxy variables, pointing at this relay on 127.0.0.1, which passes each
# connection to the mounted socket. The proxy knows the run by the socket alone, so whatever a
# tool sends (or connects to the socket itself) it gets the run's own policy and nothing more.

def relay_egress(socket_path: str, port: int = EGRESS_PORT) -> int:
    """Listens on 127.0.0.1:`port` (0: any) and relays every connection to the proxy's socket;
    returns the port."""
    listener = socket.create_server(("127.0.0.1", port))
    threading.Thread(target=_accept_egress, args=(listener, socket_path), daemon=True).start()
    return int(listener.getsockname()[1])


def egress_environment(port: int) -> dict:
    proxy = f"http://127.0.0.1:{port}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    env = {name: proxy for name in names} | {name.lower(): proxy for name in names}
    return env | {"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}


def _accept_egress(listener: socket.socket, socket_path: str) -> None:
    while True:
        client, _ = listener.accept()
        try:
            threading.Thread(target=_relay_one, args=(client, socket_path), daemon=True).start()
        except RuntimeError:  # at the process limit: this connection fails, the relay goes on
            client.close()


def _relay_one(client: socket.socket, socket_path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            upstream.connect(socket_path)
        except OSError as error:
            # The proxy went with its worker: say so, rather than reset a tool that can't tell why.
            body = (f"tether egress: the host's egress proxy is not there ({error.strerror}):"
                    " its worker restarted, or the proxy stopped, since this sandbox was made\n").encode()
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                           b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
    except (OSError, RuntimeError):
        pass
    finally:
        upstream.close()
        client.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(EGRESS_CHUNK):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main() -> None:
    _become_executor()
    _guard_self()
    if EGRESS_SOCKET:
        CHILD_ENV.update(egress_environment(relay_egress(EGRESS_SOCKET)))
    executor = Executor()
    for raw in sys.stdin.buffer:
        try:
            request = json.loads(raw)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            send({"id": None, "ok": False, "error": "a request is one JSON object a line"})
            continue
        executor.handle(request)
    # stdin closed: nobody can reach us any more, but the container's life is the host's call.
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
