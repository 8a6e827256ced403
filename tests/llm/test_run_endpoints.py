"""Whose endpoints and keys a run's model calls use: the worker's, named by the run. A run that
gives a URL or a key variable of its own is refused before any request leaves the worker."""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from tether import client as tether
from tether.contracts import ModelSpec
from tether.llm.connection import PLACEHOLDER_KEY
from tether.llm.endpoints import EndpointRefused

from tests.helpers import history_text, providers, tether_cli
from tests.llm.test_agent_runs_on_providers import openai_chunks
from tests.llm.wire_servers import HELLO, OPENAI_KEY, ProviderServer

ENCRYPTION_KEYS = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


async def refusal(handle) -> ApplicationError:  # type: ignore[no-untyped-def]
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_a_run_giving_its_own_base_url_is_refused_and_the_server_hears_nothing(
    temporal_client: Client, worker: str, serve, monkeypatch: pytest.MonkeyPatch
):
    # A server the worker does not know, while the worker holds an OpenAI key.
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    elsewhere: ProviderServer = serve("openai", OPENAI_KEY)
    handle = await tether.start_run(temporal_client, {
        "task": "hello",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "base_url": elsewhere.base_url},
    }, task_queue=worker)
    refused = await refusal(handle)
    assert refused.type == "InvalidInput"
    assert "TETHER_MODEL_ENDPOINTS" in refused.message and elsewhere.base_url in refused.message
    assert elsewhere.requests == []


async def test_a_run_naming_the_encryption_keys_as_its_key_variable_is_refused(
    temporal_client: Client, worker: str, openai_server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("TETHER_ENCRYPTION_KEYS", ENCRYPTION_KEYS)
    # The URL is one the worker configured; the variable is not the one configured with it.
    handle = await tether.start_run(temporal_client, {
        "task": "hello",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "base_url": openai_server.base_url,
                  "api_key_env": "TETHER_ENCRYPTION_KEYS"},
    }, task_queue=worker)
    refused = await refusal(handle)
    assert refused.type == "InvalidInput"
    assert "TETHER_MODEL_ENDPOINTS" in refused.message and "TETHER_ENCRYPTION_KEYS" in refused.message
    assert openai_server.requests == []
    assert ENCRYPTION_KEYS not in await history_text(handle)


async def test_a_fallback_model_giving_its_own_key_variable_refuses_the_run_before_the_first_call(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    handle = await tether.start_run(temporal_client, {
        "task": "hello",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "endpoint": "wire-openai"},
        "fallback_models": [{"provider": "anthropic", "name": "claude-3-5-haiku-latest",
                             "api_key_env": "BILLING_DB_PASSWORD"}],
    }, task_queue=worker)
    refused = await refusal(handle)
    assert refused.type == "InvalidInput" and "BILLING_DB_PASSWORD" in refused.message
    assert openai_server.requests == []


async def test_a_run_naming_an_endpoint_the_worker_lacks_is_refused_listing_those_it_has(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(temporal_client, {
        "task": "hello", "model": {"provider": "openai", "name": "gpt-4o-mini", "endpoint": "nope"},
    }, task_queue=worker)
    refused = await refusal(handle)
    assert refused.type == "InvalidInput"
    assert "'nope'" in refused.message and "wire-openai" in refused.message


async def test_a_configured_endpoint_named_by_the_run_serves_it_end_to_end(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    openai_server.reply_stream(openai_chunks("served by the worker's endpoint"))
    result = await tether.run(temporal_client, {
        "task": "hello",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "endpoint": "wire-openai"},
    }, task_queue=worker)
    assert result.output == "served by the worker's endpoint"
    assert [r.key for r in openai_server.requests] == [OPENAI_KEY]


async def test_a_base_url_that_is_a_configured_endpoints_own_is_taken_as_naming_it(
    temporal_client: Client, worker: str, openai_server: ProviderServer
):
    # Inputs written before endpoints had names keep working where the worker configured them.
    openai_server.reply_stream(openai_chunks("as before"))
    result = await tether.run(temporal_client, {
        "task": "hello",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "base_url": openai_server.base_url},
    }, task_queue=worker)
    assert result.output == "as before"


async def test_with_the_opt_in_an_input_url_gets_the_placeholder_key_never_the_workers(
    serve, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("TETHER_ALLOW_INPUT_URLS", "1")
    local: ProviderServer = serve("openai", PLACEHOLDER_KEY)
    local.reply_json({"id": "c1", "object": "chat.completion", "created": 1, "model": "llama3",
                      "choices": [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": "hi"}}]})
    spec = ModelSpec(provider="openai", name="llama3", base_url=local.base_url)
    turn = await providers().get("openai").complete(spec, HELLO, [])
    assert turn.text == "hi"
    assert [r.key for r in local.requests] == [PLACEHOLDER_KEY]


async def test_a_provider_asked_for_a_url_its_worker_did_not_configure_sends_nothing(
    serve, monkeypatch: pytest.MonkeyPatch
):
    # The check at the request itself: a run started by a worker configured otherwise (or a
    # recorded input from before endpoints) reaches this worker's provider unchecked.
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    elsewhere: ProviderServer = serve("openai", OPENAI_KEY)
    spec = ModelSpec(provider="openai", name="gpt-4o-mini", base_url=elsewhere.base_url)
    with pytest.raises(EndpointRefused, match="TETHER_MODEL_ENDPOINTS"):
        await providers().get("openai").complete(spec, HELLO, [])
    assert elsewhere.requests == []


async def test_the_cli_names_an_endpoint_and_is_refused_a_url_of_its_own(
    temporal_address: str, worker: str, openai_server: ProviderServer
):
    openai_server.reply_stream(openai_chunks("named by the CLI"))
    code, out, err = await tether_cli(temporal_address, worker, "run", "hello", "--model",
                                      "openai:gpt-4o-mini", "--endpoint", "wire-openai", "--wait")
    assert code == 0, err
    assert "named by the CLI" in out
    code, out, err = await tether_cli(temporal_address, worker, "run", "hello", "--model",
                                      "openai:gpt-4o-mini", "--base-url",
                                      f"{openai_server.base_url}/elsewhere", "--wait")
    assert code != 0
    assert "TETHER_ALLOW_INPUT_URLS=1" in out + err
    assert len(openai_server.requests) == 1  # the first run's only: the server records any path
