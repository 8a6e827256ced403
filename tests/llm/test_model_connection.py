"""`llm.connection` and `llm.endpoints`: the endpoint, key and timeout of a call, all the
worker's; what to set when one is missing; what a run may not choose."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tether.contracts import ModelSpec
from tether.llm.connection import PLACEHOLDER_KEY, connection_for
from tether.llm.endpoints import EndpointRefused, ModelEndpoint, ModelEndpoints
from tether.llm.provider import PermanentModelError
from tether.settings import TetherSettings

OPENAI = ModelSpec(provider="openai", name="gpt-4o-mini")
LOCAL = ModelSpec(provider="openai", name="llama3", endpoint="ollama")
WORKER = ModelEndpoints({
    "ollama": ModelEndpoint(provider="openai", base_url="http://127.0.0.1:11434/v1/"),
    "team": ModelEndpoint(provider="openai", base_url="http://127.0.0.1:8000/v1", api_key_env="TEAM_KEY"),
})
NONE = ModelEndpoints()


def test_the_vendors_endpoint_and_key_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    conn = connection_for(OPENAI, NONE)
    assert (conn.base_url, conn.key_env, conn.api_key) == (
        "https://api.openai.com/v1", "OPENAI_API_KEY", "sk-abc",
    )
    assert conn.timeout == 120.0
    assert conn.where == "openai:gpt-4o-mini at https://api.openai.com/v1"


def test_the_key_is_not_in_the_connections_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-do-not-print")
    conn = connection_for(ModelSpec(provider="anthropic", name="claude-3-5-haiku-latest"), NONE)
    assert "sk-ant-do-not-print" not in repr(conn)
    assert conn.secret == "sk-ant-do-not-print"


def test_no_key_for_the_vendors_endpoint_names_the_variable_to_set() -> None:
    with pytest.raises(PermanentModelError, match=r"set the environment variable \$OPENAI_API_KEY"):
        connection_for(OPENAI, NONE)


def test_an_endpoint_configured_without_a_key_variable_gets_a_placeholder_that_is_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    conn = connection_for(LOCAL, WORKER)
    assert conn.base_url == "http://127.0.0.1:11434/v1"
    assert conn.api_key == PLACEHOLDER_KEY
    assert conn.secret is None


def test_a_named_endpoint_wins_over_the_workers_base_url_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere:9/v1")
    assert connection_for(LOCAL, WORKER).base_url == "http://127.0.0.1:11434/v1"
    assert connection_for(OPENAI, NONE).base_url == "http://elsewhere:9/v1"


def test_the_timeout_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_MODEL_TIMEOUT_SECONDS", "7.5")
    timeout = TetherSettings().model_timeout_seconds
    assert connection_for(LOCAL, WORKER, timeout_seconds=timeout).timeout == 7.5


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_timeout_setting_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TETHER_MODEL_TIMEOUT_SECONDS", value)
    with pytest.raises(ValidationError, match="model_timeout_seconds"):
        TetherSettings()


def test_a_configured_endpoint_reads_its_own_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_KEY", "sk-team")
    conn = connection_for(ModelSpec(provider="openai", name="m", endpoint="team"), WORKER)
    assert (conn.base_url, conn.key_env, conn.api_key) == ("http://127.0.0.1:8000/v1", "TEAM_KEY", "sk-team")


@pytest.mark.parametrize("given", [
    {"base_url": "http://evil.example/v1"},
    {"api_key_env": "TETHER_ENCRYPTION_KEYS"},
    {"base_url": "http://127.0.0.1:8000/v1", "api_key_env": "OPENAI_API_KEY"},
    {"endpoint": "team", "api_key_env": "AWS_SECRET_ACCESS_KEY"},
    {"endpoint": "team", "base_url": "http://evil.example/v1"},
])
def test_a_url_or_key_variable_the_worker_did_not_configure_is_refused_naming_the_setting(
    given: dict[str, str],
) -> None:
    with pytest.raises(EndpointRefused, match="TETHER_MODEL_ENDPOINTS"):
        WORKER.route(ModelSpec(provider="openai", name="m", **given))


def test_an_endpoint_of_another_provider_is_refused() -> None:
    with pytest.raises(EndpointRefused, match="no anthropic endpoint 'team'"):
        WORKER.route(ModelSpec(provider="anthropic", name="m", endpoint="team"))


@pytest.mark.parametrize("given", [
    {"base_url": "http://127.0.0.1:8000/v1"},
    {"base_url": "http://127.0.0.1:8000/v1/", "api_key_env": "TEAM_KEY"},
    {"api_key_env": "TEAM_KEY"},
])
def test_what_a_configured_endpoint_says_is_taken_as_naming_it(given: dict[str, str]) -> None:
    route = WORKER.route(ModelSpec(provider="openai", name="m", **given))
    assert (route.base_url, route.key_env) == ("http://127.0.0.1:8000/v1", "TEAM_KEY")


@pytest.mark.parametrize("given", [{}, {"api_key_env": "OPENAI_API_KEY"},
                                   {"base_url": "https://api.openai.com/v1/"}])
def test_the_vendors_url_with_its_own_key_variable_needs_no_configuration(given: dict[str, str]) -> None:
    route = NONE.route(ModelSpec(provider="openai", name="m", **given))
    assert (route.base_url, route.key_env) == ("https://api.openai.com/v1", "OPENAI_API_KEY")


def test_with_the_opt_in_an_input_url_is_sent_the_placeholder_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    opted_in = ModelEndpoints(allow_input_urls=True)
    conn = connection_for(ModelSpec(provider="openai", name="m", base_url="http://127.0.0.1:9/v1"), opted_in)
    assert (conn.base_url, conn.key_env, conn.api_key) == ("http://127.0.0.1:9/v1", None, PLACEHOLDER_KEY)


def test_even_with_the_opt_in_an_input_key_variable_is_refused() -> None:
    opted_in = ModelEndpoints(allow_input_urls=True)
    with pytest.raises(EndpointRefused, match="api_key_env \\$OPENAI_ADMIN_KEY"):
        opted_in.route(ModelSpec(provider="openai", name="m", base_url="http://127.0.0.1:9/v1",
                                 api_key_env="OPENAI_ADMIN_KEY"))


def test_the_endpoints_come_from_the_settings_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_MODEL_ENDPOINTS", '{"vllm": {"provider": "openai", '
                       '"base_url": "http://127.0.0.1:8000/v1", "api_key_env": "VLLM_KEY"}}')
    policy = TetherSettings().model_endpoint_policy
    assert policy.route(ModelSpec(provider="openai", name="m", endpoint="vllm")).key_env == "VLLM_KEY"
    assert not policy.allow_input_urls


@pytest.mark.parametrize("value", ['{"x": {"provider": "openai"}}', '{"bad name": {"provider": "openai", '
                                   '"base_url": "http://127.0.0.1:1"}}', "not json"])
def test_a_malformed_endpoints_setting_stops_the_worker_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TETHER_MODEL_ENDPOINTS", value)
    with pytest.raises(Exception, match="model_endpoints"):
        TetherSettings()
