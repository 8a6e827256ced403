"""The model endpoints and MCP servers the suite's worker is configured with.

A run names an endpoint; it may not give a URL or a key variable of its own. So the servers
behind the suite's endpoints exist before the worker's settings are read: the two wire
servers are bound here, on import, and serve for the whole session (each test that uses one
starts it clean, `tests.llm.conftest`); the MCP server's port is reserved here for the
module that starts it (`tests/test_mcp_servers.py`).
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import MutableMapping

import pytest

from tests.helpers import free_port
from tests.llm.wire_servers import ANTHROPIC_KEY, OPENAI_KEY, ProviderServer

WIRE_OPENAI = ProviderServer("openai", OPENAI_KEY)
WIRE_ANTHROPIC = ProviderServer("anthropic", ANTHROPIC_KEY)
TEAM_KEY_ENV = "TEAM_OPENAI_KEY"
MODEL_ENDPOINTS = {
    "wire-openai": {"provider": "openai", "base_url": WIRE_OPENAI.base_url,
                    "api_key_env": "OPENAI_API_KEY"},
    "wire-anthropic": {"provider": "anthropic", "base_url": WIRE_ANTHROPIC.base_url,
                       "api_key_env": "ANTHROPIC_API_KEY"},
    "wire-openai-team": {"provider": "openai", "base_url": WIRE_OPENAI.base_url,
                         "api_key_env": TEAM_KEY_ENV},
}
ENDPOINT_OF = {"openai": "wire-openai", "anthropic": "wire-anthropic"}
"""The endpoint each session wire server is configured as."""

def port_outside_the_ephemeral_range() -> int:
    """A free port below Linux's ephemeral range (32768 and up). server-everything starts long
    after the port is chosen, and meanwhile the suite's servers bind `free_port()`s (a dev
    server also takes its port + 1000) and its clients take ephemeral ports: one of those
    took an ephemeral choice in a full run, and every MCP test read from the wrong server."""
    for _ in range(100):
        port = random.randrange(20000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


MCP_PORT = port_outside_the_ephemeral_range()
MCP_URL = f"http://127.0.0.1:{MCP_PORT}/mcp"
MISSING_TOKEN_ENV = "MISSING_TOKEN_VAR"
MCP_SERVERS = {
    "every": {"url": MCP_URL},
    "every-token": {"url": MCP_URL, "headers_env": {"X-Team-Token": MISSING_TOKEN_ENV}},
}


def configure(environ: MutableMapping[str, str]) -> None:
    environ["TETHER_MODEL_ENDPOINTS"] = json.dumps(MODEL_ENDPOINTS)
    environ["TETHER_MCP_SERVERS"] = json.dumps(MCP_SERVERS)


def wire_server(flavor: str) -> ProviderServer:
    """The session's wire server of `flavor`, serving from its first use."""
    server = WIRE_OPENAI if flavor == "openai" else WIRE_ANTHROPIC
    server.serve_once_started()
    return server


def add_model_endpoint(monkeypatch: pytest.MonkeyPatch, name: str, **endpoint: str) -> None:
    """Configures one more endpoint, for this test, where `tests.helpers.providers` reads them
    (the suite's worker keeps the endpoints it started with)."""
    configured = json.loads(os.environ.get("TETHER_MODEL_ENDPOINTS", "{}"))
    monkeypatch.setenv("TETHER_MODEL_ENDPOINTS", json.dumps({**configured, name: endpoint}))
