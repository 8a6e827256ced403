"""MCP stdio servers in the sandbox: one process per session, fed one JSON-RPC line at a time."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

from .config import MCP_SESSION_BYTES
from .processes import _killpg, _wait


class ServerEnded(RuntimeError):
    """The MCP server exited, or wrote more than a session may."""


class McpServer:
    """An MCP stdio server process, fed one JSON-RPC line at a time."""

    def __init__(self, process: subprocess.Popen, idle_seconds: float) -> None:
        assert process.stdin is not None and process.stdout is not None  # opened with pipes
        self.process = process
        self.stdin, self.stdout = process.stdin, process.stdout
        self.lines: queue.Queue = queue.Queue()
        self.write_lock = threading.Lock()
        self.idle_seconds = idle_seconds
        self.last_used = time.monotonic()
        self.exchanges = 0
        """Exchanges in flight: a session waiting for its server's answer is never idle."""
        self.use_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def idle(self, now: float) -> bool:
        with self.use_lock:
            return self.exchanges == 0 and now - self.last_used > self.idle_seconds

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
        with self.use_lock:
            self.exchanges += 1
        try:
            return self._exchange(line, expect, timeout)
        finally:
            with self.use_lock:
                self.exchanges -= 1
                self.last_used = time.monotonic()

    def _exchange(self, line: str, expect, timeout: float) -> dict:
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
