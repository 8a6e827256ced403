"""Metric label values that come from outside tether's code, bounded. Shared by the
workflow's metrics (`workflows/telemetry.py`) and the worker's (`metrics.py`).

Each distinct value of a label is a series that the worker's Prometheus registry keeps for
the life of the process. A tool's name is the model's choice, a model's name the run
input's (or, for the model that answered, the provider's): left as they come, whoever
starts runs or steers a model could grow the registry until the worker runs out of memory,
and write what they like into every scrape.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Collection

MAX_LABEL_CHARS = 64
MAX_MODEL_LABELS = 32
"""Model names one process labels by name; any more are `<provider>:other`."""
_OUTSIDE = re.compile(r"[^A-Za-z0-9._:/@+-]")


def tool_label(name: str, toolset: Collection[str]) -> str:
    """A tool call's name when it is one of the run's tools, else `unknown`."""
    return name if name in toolset else "unknown"


class ModelLabels:
    """Model names as labels: characters outside `[A-Za-z0-9._:/@+-]` made `_`, cut to
    MAX_LABEL_CHARS, and the first `limit` names kept; any later one is `<provider>:other`."""

    def __init__(self, limit: int = MAX_MODEL_LABELS) -> None:
        self.limit = limit
        self._kept: set[str] = set()
        self._lock = threading.Lock()  # workflow tasks and activities label from several threads

    def __call__(self, provider: str, name: str) -> str:
        label = _OUTSIDE.sub("_", name)[:MAX_LABEL_CHARS] or "_"
        with self._lock:
            if label in self._kept:
                return label
            if len(self._kept) < self.limit:
                self._kept.add(label)
                return label
        return f"{provider}:other"


model_label = ModelLabels()
"""The process's: one registry, one bound."""
