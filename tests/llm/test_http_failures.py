"""How each provider reports a failed call, against a real server and the real SDK.

Every case runs for both providers: the classification is shared, but each SDK raises its own
exceptions, and a mapping missed for one of them would let a failure escape unclassified.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from tether.contracts import Message
from tether.llm.provider import PermanentModelError, TransientModelError

from tests.endpoints import add_model_endpoint
from tests.helpers import providers
from tests.llm.wire_servers import Endpoint, KeyCheck

HELLO = [Message(role="system", content="Be brief."), Message(role="user", content="hello")]


async def test_a_429_is_transient_and_carries_the_servers_retry_after(endpoint: Endpoint) -> None:
    endpoint.reply_error(429, "Rate limit reached", headers={"retry-after": "17"})
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert error.retry_after == 17.0
    assert "answered 429: Rate limit reached" in str(error)
    assert len(endpoint.server.requests) == 1  # the SDK did not retry behind Temporal's back


async def test_retry_after_ms_is_read_too(endpoint: Endpoint) -> None:
    endpoint.reply_error(429, "slow down", headers={"retry-after-ms": "250"})
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert error.retry_after == 0.25


async def test_a_500_is_transient_and_the_sdk_does_not_retry_it(endpoint: Endpoint) -> None:
    endpoint.reply_error(500, "The server had an error")
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert error.retry_after is None
    assert len(endpoint.server.requests) == 1


async def test_a_400_is_permanent_and_quotes_what_the_server_rejected(endpoint: Endpoint) -> None:
    endpoint.reply_error(400, "Invalid value for 'temperature'")
    error = await endpoint.failure()
    assert isinstance(error, PermanentModelError)
    assert "answered 400: Invalid value for 'temperature'" in str(error)
    assert "check the model name and its parameters" in str(error)


async def test_a_context_length_error_says_the_conversation_no_longer_fits(
    endpoint: Endpoint,
) -> None:
    endpoint.reply_error(400, "prompt is too long: 201000 tokens > 200000 maximum")
    error = await endpoint.failure()
    assert isinstance(error, PermanentModelError)
    assert "no longer fits the model's context window" in str(error)


async def test_a_wrong_key_is_permanent_and_names_the_variable_but_never_the_key(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch,
    assert_key_absent: KeyCheck,
) -> None:
    wrong = "sk-wrong-but-still-5ecret-4f9a"
    monkeypatch.setenv(endpoint.key_env, wrong)
    error = await endpoint.failure()  # the server's 401 body echoes the key it received
    assert isinstance(error, PermanentModelError)
    assert f"check the key in ${endpoint.key_env}" in str(error)
    assert "Incorrect API key provided: ***" in str(error)
    assert_key_absent(error, wrong)


async def test_a_key_from_a_custom_variable_is_the_one_named_on_a_401(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_MODEL_KEY", "sk-team-key-not-the-one-the-server-wants")
    add_model_endpoint(monkeypatch, "team", provider=endpoint.flavor,
                       base_url=endpoint.server.base_url, api_key_env="TEAM_MODEL_KEY")
    spec = endpoint.spec.model_copy(update={"endpoint": "team"})
    with pytest.raises(PermanentModelError, match=r"check the key in \$TEAM_MODEL_KEY"):
        await providers().get(spec.provider).complete(spec, HELLO, [])
    assert endpoint.server.requests[0].key == "sk-team-key-not-the-one-the-server-wants"


@pytest.mark.parametrize("status", [400, 429, 500, 503])
async def test_the_key_never_appears_in_an_error_even_when_the_server_echoes_it(
    endpoint: Endpoint, status: int,
    assert_key_absent: KeyCheck,
) -> None:
    echoed = f"request from key {endpoint.server.api_key} refused"
    endpoint.reply_error(status, echoed)
    error = await endpoint.failure()
    assert "request from key *** refused" in str(error)
    assert_key_absent(error, endpoint.server.api_key)


async def test_a_missing_key_for_the_vendors_endpoint_is_permanent_and_names_the_variable(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(endpoint.key_env)
    spec = endpoint.spec.model_copy(update={"endpoint": None})
    needed = rf"set the environment variable \${endpoint.key_env}"
    with pytest.raises(PermanentModelError, match=needed):
        await providers().get(spec.provider).complete(spec, HELLO, [])


async def test_an_answer_slower_than_the_timeout_is_transient(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_MODEL_TIMEOUT_SECONDS", "0.3")
    endpoint.reply_error(200, "never read", delay=10)
    started = time.monotonic()
    error = await endpoint.failure()
    assert time.monotonic() - started < 3
    assert isinstance(error, TransientModelError)
    assert "did not answer within 0.3 s" in str(error)


async def test_an_unreachable_server_is_transient(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    add_model_endpoint(monkeypatch, "gone", provider=endpoint.flavor, base_url=f"http://127.0.0.1:{port}")
    spec = endpoint.spec.model_copy(update={"endpoint": "gone"})
    with pytest.raises(TransientModelError, match=f"could not reach .*127.0.0.1:{port}"):
        await providers().get(spec.provider).complete(spec, HELLO, [])


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess', "application/json"),
    (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    (json.dumps({"id": "x", "object": "unexpected"}).encode(), "application/json"),
], ids=["truncated-json", "html-page", "wrong-shape"])
async def test_a_200_that_is_not_a_model_answer_is_transient(
    endpoint: Endpoint, body: bytes, content_type: str
) -> None:
    endpoint.server.reply_raw(body, content_type=content_type)
    error = await endpoint.failure()
    assert isinstance(error, TransientModelError)
    assert "sent a response that is not a model answer" in str(error)
    assert "check that the base URL points at the model's API" in str(error)
