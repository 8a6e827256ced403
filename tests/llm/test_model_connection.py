"""`llm.connection`: the endpoint, key and timeout of a call; what to set when one is missing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tether.contracts import ModelSpec
from tether.llm.connection import PLACEHOLDER_KEY, connection_for
from tether.llm.provider import PermanentModelError
from tether.settings import TetherSettings

OPENAI = ModelSpec(provider="openai", name="gpt-4o-mini")
LOCAL = ModelSpec(provider="openai", name="llama3", base_url="http://127.0.0.1:11434/v1/")


def test_the_vendors_endpoint_and_key_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abc")
    conn = connection_for(OPENAI)
    assert (conn.base_url, conn.key_env, conn.api_key) == (
        "https://api.openai.com/v1", "OPENAI_API_KEY", "sk-abc",
    )
    assert conn.timeout == 120.0
    assert conn.where == "openai:gpt-4o-mini at https://api.openai.com/v1"


def test_the_key_is_not_in_the_connections_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-do-not-print")
    conn = connection_for(ModelSpec(provider="anthropic", name="claude-3-5-haiku-latest"))
    assert "sk-ant-do-not-print" not in repr(conn)
    assert conn.secret == "sk-ant-do-not-print"


def test_no_key_for_the_vendors_endpoint_names_the_variable_to_set() -> None:
    with pytest.raises(PermanentModelError, match=r"set the environment variable \$OPENAI_API_KEY"):
        connection_for(OPENAI)


def test_a_local_server_gets_a_placeholder_key_that_is_not_treated_as_secret() -> None:
    conn = connection_for(LOCAL)
    assert conn.base_url == "http://127.0.0.1:11434/v1"
    assert conn.api_key == PLACEHOLDER_KEY
    assert conn.secret is None


def test_the_spec_base_url_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere:9/v1")
    assert connection_for(LOCAL).base_url == "http://127.0.0.1:11434/v1"
    assert connection_for(OPENAI).base_url == "http://elsewhere:9/v1"


def test_the_timeout_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_MODEL_TIMEOUT_SECONDS", "7.5")
    timeout = TetherSettings().model_timeout_seconds
    assert connection_for(LOCAL, timeout_seconds=timeout).timeout == 7.5


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_timeout_setting_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TETHER_MODEL_TIMEOUT_SECONDS", value)
    with pytest.raises(ValidationError, match="model_timeout_seconds"):
        TetherSettings()
