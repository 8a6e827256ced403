"""`tools.mcp_servers`: which HTTP MCP servers a run reaches, and with which header variables:
the worker's configuration, never the run's input."""

from __future__ import annotations

from typing import Any

import pytest
from tether.contracts.tools import McpServer
from tether.settings import TetherSettings
from tether.tools.mcp_servers import McpEndpoint, McpEndpoints, McpRefused

DOCS = McpEndpoint(url="http://127.0.0.1:3001/mcp", headers_env={"Authorization": "DOCS_TOKEN"})
WORKER = McpEndpoints({"docs": DOCS})


def server(**given: Any) -> McpServer:
    return McpServer.model_validate({"name": "docs", **given})


def test_a_server_named_alone_is_reached_as_the_worker_configured_it() -> None:
    resolved = WORKER.resolve(server(tools=["search"]))
    assert (resolved.url, resolved.headers_env, resolved.tools) == (
        DOCS.url, {"Authorization": "DOCS_TOKEN"}, ["search"])


@pytest.mark.parametrize("given", [
    {"url": "http://evil.example/mcp"},
    {"url": "http://evil.example/mcp", "headers_env": {"Authorization": "DOCS_TOKEN"}},
    {"url": DOCS.url, "headers_env": {"Authorization": "TETHER_ENCRYPTION_KEYS"}},
    {"headers_env": {"X-Key": "AWS_SECRET_ACCESS_KEY"}},
])
def test_a_url_or_header_variable_the_worker_did_not_configure_is_refused_naming_the_setting(
    given: dict[str, Any],
) -> None:
    with pytest.raises(McpRefused, match="TETHER_MCP_SERVERS"):
        WORKER.resolve(server(**given))


def test_a_server_the_worker_lacks_is_refused_listing_those_it_has() -> None:
    with pytest.raises(McpRefused, match=r"'wiki' is not configured .*this worker has: docs"):
        WORKER.resolve(McpServer(name="wiki"))


def test_what_the_worker_configured_under_that_name_is_taken_as_naming_it() -> None:
    resolved = WORKER.resolve(server(url=DOCS.url + "/", headers_env={"Authorization": "DOCS_TOKEN"}))
    assert resolved.headers_env == {"Authorization": "DOCS_TOKEN"}


def test_with_the_opt_in_an_input_url_is_reached_without_headers_and_never_with_them() -> None:
    opted_in = McpEndpoints(allow_input_urls=True)
    reached = opted_in.resolve(McpServer(name="mine", url="http://127.0.0.1:9/mcp"))
    assert (reached.url, reached.headers_env) == ("http://127.0.0.1:9/mcp", {})
    with pytest.raises(McpRefused, match="headers_env"):
        opted_in.resolve(McpServer(name="mine", url="http://127.0.0.1:9/mcp",
                                   headers_env={"Authorization": "OPENAI_API_KEY"}))


def test_a_server_in_the_runs_sandbox_is_left_as_it_is() -> None:
    stdio = McpServer(name="time", command=["python3", "-m", "mcp_server_time"], where="sandbox")
    assert McpEndpoints().resolve(stdio) == stdio


def test_the_servers_come_from_the_settings_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_MCP_SERVERS", '{"docs": {"url": "http://127.0.0.1:3001/mcp", '
                       '"headers_env": {"Authorization": "DOCS_TOKEN"}}}')
    assert TetherSettings().mcp_endpoint_policy.resolve(McpServer(name="docs")).url == DOCS.url
