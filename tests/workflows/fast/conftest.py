"""One Temporal dev server for the fast workflow tests: the `temporal` binary installed
beside the interpreter, tether's search attributes registered, the pydantic converter.

No Docker and no model: each test runs `AgentRun` on a worker of its own whose activities
are the stand-ins of `standins.py`. The repository's conftest fixtures (`worker`,
`temporal_client`, `docker_engine`) are never requested here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from tether.embedded.temporal import SEARCH_ATTRIBUTE_TYPES, temporal_binary


@pytest.fixture(scope="session")
async def fast_env() -> AsyncIterator[WorkflowEnvironment]:
    search_attributes = [
        arg for name, kind in SEARCH_ATTRIBUTE_TYPES.items()
        for arg in ("--search-attribute", f"{name}={kind}")
    ]
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=search_attributes,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def fast_client(fast_env: WorkflowEnvironment) -> Client:
    return fast_env.client
