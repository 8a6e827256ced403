"""The egress proxy as a worker runs it, with its interpreter from `make deps` (.venv/egress)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tether.egress.proxy import EgressProxy
from tether.sandbox.hardening import SANDBOX_UID

EGRESS_PYTHON = Path(sys.prefix) / "egress" / "bin" / "python"


@pytest.fixture
async def egress() -> AsyncIterator[EgressProxy]:
    if not EGRESS_PYTHON.exists():
        pytest.fail(f"{EGRESS_PYTHON} is missing: run `make deps` (it installs mitmproxy there)")
    # As a worker runs it: each run's sockets are the sandboxes' uid's alone.
    proxy = EgressProxy(python=str(EGRESS_PYTHON), sandbox_uid=SANDBOX_UID)
    yield proxy
    await proxy.stop()
