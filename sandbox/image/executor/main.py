"""The executor's life: it drops what it must not keep, guards itself, opens the way out where
the run has one, then serves one request a line until its stdin closes."""

from __future__ import annotations

import json
import sys
import time

from .config import CHILD_ENV, EGRESS_CA, EGRESS_SOCKET
from .egress import egress_environment, open_egress
from .privileges import _become_executor, _guard_self
from .protocol import send
from .serving import Executor


def main() -> None:
    _become_executor()
    _guard_self()
    if EGRESS_SOCKET:
        CHILD_ENV.update(egress_environment(open_egress(EGRESS_SOCKET), EGRESS_CA))
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
