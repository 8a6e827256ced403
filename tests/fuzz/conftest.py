"""The session's OpenAI and Anthropic loopback servers for the fuzz module that asks for them
(the suite's worker knows them as its endpoints), with the keys they expect in the
environment the suite's worker reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.endpoints import wire_server
from tests.llm.wire_servers import (
    ANTHROPIC_KEY,
    ENV_READ_BY_TETHER_OR_SDKS,
    OPENAI_KEY,
    ProviderServer,
)


@pytest.fixture(scope="module")
def wire_servers() -> Iterator[dict[str, ProviderServer]]:
    keys = {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY}
    servers = {flavor: wire_server(flavor) for flavor in keys}
    with pytest.MonkeyPatch.context() as env:
        for name in ENV_READ_BY_TETHER_OR_SDKS:
            env.delenv(name, raising=False)
        env.setenv("OPENAI_API_KEY", OPENAI_KEY)
        env.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        for flavor, server in servers.items():
            server.reset(keys[flavor])
        yield servers
        for flavor, server in servers.items():
            server.reset(keys[flavor])
