"""Configuration from the environment, in one place, with the defaults DESIGN.md names."""

from __future__ import annotations

import os
import socket
from pathlib import Path

DEFAULT_TASK_QUEUE = "agents"
DEFAULT_NAMESPACE = "default"
DEFAULT_ADDRESS = "127.0.0.1:7233"


def ui_port() -> int:
    return int(os.environ.get("TETHER_UI_PORT", "8233"))


def data_dir() -> Path:
    """Where tether keeps its state: the dev server's SQLite file, the conversation store."""
    return Path(os.environ.get("TETHER_DATA_DIR", ".tether")).resolve()


def store_dir() -> Path:
    return Path(os.environ.get("TETHER_STORE_DIR", str(data_dir() / "store"))).resolve()


def temporal_address() -> str:
    return os.environ.get("TEMPORAL_ADDRESS", DEFAULT_ADDRESS)


def namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE", DEFAULT_NAMESPACE)


def task_queue() -> str:
    return os.environ.get("TETHER_TASK_QUEUE", DEFAULT_TASK_QUEUE)


def worker_id() -> str:
    """Names this host's sandbox queue. Stable across restarts, so a restarted worker
    reattaches to the containers its predecessor left running on the same engine."""
    return os.environ.get("TETHER_WORKER_ID") or socket.gethostname()


def host_task_queue(shared_queue: str | None = None) -> str:
    return f"{shared_queue or task_queue()}@{worker_id()}"


def ui_url(workflow_id: str, run_id: str | None = None) -> str:
    base = os.environ.get("TETHER_UI_URL", f"http://localhost:{ui_port()}")
    suffix = f"/{run_id}" if run_id else ""
    return f"{base}/namespaces/{namespace()}/workflows/{workflow_id}{suffix}"
