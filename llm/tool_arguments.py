"""A tool call's arguments as the model wrote them, JSON text, read the same way whichever
provider carried them.

Malformed JSON is kept as `{"_raw": ...}`, not raised: the call then fails as a tool error
the model reads, and the model can correct itself. Raised, it would fail the model call,
which Temporal retries, for something the model wrote and may well write again.
"""

from __future__ import annotations

import json
from typing import Any


def parse_arguments(raw: str | None) -> dict[str, Any]:
    if not raw or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):  # RecursionError: nested past what json reads
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}
