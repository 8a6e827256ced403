"""The executor's requests: each op dispatched, tool calls run exactly once by their
idempotency key (a ledger of finished results answers a retry), MCP sessions opened and closed."""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time

from .config import (
    ADDRESS_SPACE_MB,
    CHILD_ENV,
    LEDGER_MAX_BYTES,
    LEDGER_RESULTS_KEPT,
    MCP_IDLE_SECONDS,
    MEMORY_MB,
    OOM_KILLS,
    OUT_OF_MEMORY,
    PIDS_REFUSED,
)
from .limits import TOOL_PRELUDE, _counter, _limit_notes
from .mcp import McpServer, ServerEnded
from .output import CappedBuffer, _collect
from .processes import _exit_code, _kill_strays, _killpg, _start, _wait
from .protocol import _result, send
from .tool_files import _read_file, _write_file
from .workspace import WORKSPACE_OPS, _workspace_op


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
                self.close_idle_servers()
                result = self.open_server(session, [str(part) for part in request.get("argv") or []],
                                          float(request.get("idle_seconds") or MCP_IDLE_SECONDS))
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

    def open_server(self, session: str, argv: list, idle_seconds: float) -> dict:
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
        server = McpServer(process, idle_seconds)
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

    def close_idle_servers(self) -> None:
        """Closes the sessions their hosts left: while one is open, no sweep of the tools'
        leftovers runs (a server is not a leftover), so one left forever would keep every
        call's daemons alive. Done as calls come, which is when a sweep matters."""
        now = time.monotonic()
        with self.lock:
            idle = [session for session, server in self.servers.items() if server.idle(now)]
        for session in idle:
            self.close_server(session)

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
        if owner:  # this call counts as running: closing a session sweeps nothing under it
            self.close_idle_servers()
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
