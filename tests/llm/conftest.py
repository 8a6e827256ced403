"""Fixtures for the wire tests: loopback servers that answer like OpenAI and Anthropic, with
the test's environment holding only the keys they expect. `openai_server` and
`anthropic_server` are the session's, the suite worker's configured endpoints (`tests.endpoints`),
clean for each test; `serve` starts others, stopped after the test. The servers and helpers
themselves are in `tests.llm.wire_servers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from tether.contracts import ModelSpec

from tests.endpoints import ENDPOINT_OF, wire_server
from tests.llm.wire_servers import (
    ANTHROPIC_KEY,
    ENV_READ_BY_TETHER_OR_SDKS,
    OPENAI_KEY,
    Endpoint,
    Flavor,
    KeyCheck,
    ProviderServer,
    check_key_absent,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the configuration they set, never the developer's real keys."""
    for name in ENV_READ_BY_TETHER_OR_SDKS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def serve() -> Iterator[Callable[[Flavor, str], ProviderServer]]:
    """Starts servers with any key (a local server expecting none); all stop after the test."""
    started: list[ProviderServer] = []

    def start(flavor: Flavor, api_key: str) -> ProviderServer:
        server = ProviderServer(flavor, api_key)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """The session's OpenAI server, the suite worker's endpoint `wire-openai`, clean."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    server = wire_server("openai")
    server.reset(OPENAI_KEY)
    yield server
    server.reset(OPENAI_KEY)


@pytest.fixture
def anthropic_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """The session's Anthropic server, the suite worker's endpoint `wire-anthropic`, clean."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    server = wire_server("anthropic")
    server.reset(ANTHROPIC_KEY)
    yield server
    server.reset(ANTHROPIC_KEY)


@pytest.fixture(params=["openai", "anthropic"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    provider = request.param
    server = request.getfixturevalue(f"{provider}_server")
    name = "gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku-latest"
    spec = ModelSpec(provider=provider, name=name, endpoint=ENDPOINT_OF[provider])
    return Endpoint(server=server, spec=spec, key_env=f"{provider.upper()}_API_KEY")


@pytest.fixture
def assert_key_absent() -> KeyCheck:
    return check_key_absent
