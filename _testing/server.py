"""A test environment's own Temporal dev server: on a free port, with its state in memory and
its log in the environment's directory, so a server that won't start can say why."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tether.embedded.temporal import ServerUnavailable, start

STARTUP_SECONDS = 60.0
STOP_SECONDS = 10.0
LOG_LINES = 20
"""How much of a server's log the error shows: its last lines hold the reason."""


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    address: str

    def stop(self) -> None:
        """Stops the server and reaps it: no process of it is left."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_dev_server(directory: Path, *, port: int | None = None) -> DevServer:
    """Starts `temporal server start-dev` and waits until it serves; if it won't, raises
    `ServerUnavailable` with the end of its log (the directory is gone by the time anyone
    could read the file)."""
    port = port or free_port()
    log = directory / "temporal.log"
    try:
        process = start(port=port, ui_port=None, db_file=None, log_file=log,
                        wait_seconds=STARTUP_SECONDS)
    except ServerUnavailable as error:
        reason = str(error).split("; see ")[0]
        raise ServerUnavailable(
            f"the test environment's Temporal dev server did not start on 127.0.0.1:{port} "
            f"({reason}); the end of its log:\n{tail(log)}") from None
    return DevServer(process=process, address=f"127.0.0.1:{port}")


def tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_LINES:]) or "(empty)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
