"""The example user test of docs/testing.md (examples/test_my_agent.py) passes as a user runs it, on a
machine with no Docker engine: DOCKER_HOST names a socket that does not exist."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.helpers import run_command


async def test_the_example_user_test_passes_without_a_docker_engine(tmp_path: Path):
    missing = tmp_path / "docker.sock"
    # A user's shell, not the suite's: none of the suite's TETHER_* or TEMPORAL_* settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TETHER_", "TEMPORAL_"))}
    code, out, err = await run_command(
        f"{sys.executable} -m pytest examples/test_my_agent.py -q -p no:cacheprovider",
        env={**env, "DOCKER_HOST": f"unix://{missing}"})
    assert code == 0, out + err
    assert "2 passed" in out
    assert not missing.exists()
