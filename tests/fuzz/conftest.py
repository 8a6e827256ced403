"""One OpenAI and one Anthropic loopback server for the fuzz module that asks for them,
with the keys they expect in the environment the suite's worker reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llm.wire_servers import (
    ANTHROPIC_KEY,
    ENV_READ_BY_TETHER_OR_SDKS,
    OPENAI_KEY,
    ProviderServer,
)


@pytest.fixture(scope="module")
def wire_servers() -> Iterator[dict[str, ProviderServer]]:
    servers = {"openai": ProviderServer("openai", OPENAI_KEY),
               "anthropic": ProviderServer("anthropic", ANTHROPIC_KEY)}
    with pytest.MonkeyPatch.context() as env:
        for name in ENV_READ_BY_TETHER_OR_SDKS:
            env.delenv(name, raising=False)
        env.setenv("OPENAI_API_KEY", OPENAI_KEY)
        env.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        for server in servers.values():
            server.start()
        yield servers
        for server in servers.values():
            server.stop()
