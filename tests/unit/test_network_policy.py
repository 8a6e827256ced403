"""`sandbox.network`: "none" as before, or an allow-list checked strictly at the input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tether.contracts import AgentRunInput, SandboxSpec
from tether.contracts.network import Destination, NetworkPolicy


def refusal(network: object) -> str:
    with pytest.raises(ValidationError) as caught:
        SandboxSpec.model_validate({"network": network})
    return str(caught.value)


def test_network_is_none_by_default_and_an_older_input_still_decodes() -> None:
    assert SandboxSpec().network == "none"
    older = AgentRunInput.model_validate({"task": "t", "sandbox": {"network": "none"}})
    assert older.sandbox.network == "none"


def test_an_allow_list_names_hosts_ports_suffixes_and_addresses() -> None:
    spec = SandboxSpec.model_validate({"network": {"allow": [
        "PyPI.org", "*.pythonhosted.org", "github.com:443", "127.0.0.1:8080", "[::1]:80"]}})
    assert isinstance(spec.network, NetworkPolicy)
    assert spec.network.destinations() == [
        Destination("pypi.org", None), Destination("*.pythonhosted.org", None),
        Destination("github.com", 443), Destination("127.0.0.1", 8080), Destination("::1", 80)]


def test_an_allow_list_survives_a_round_trip_through_json() -> None:
    spec = SandboxSpec.model_validate({"network": {"allow": ["pypi.org"]}})
    assert SandboxSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(("network", "says"), [
    ("all", 'network is "none" or {"allow"'),
    ({"allow": []}, 'an empty allow-list reaches nothing: write "network": "none"'),
    ({"allow": ["*"]}, "there is no allow-everything entry"),
    ({"allow": ["a*.example.org"]}, "a wildcard is only allowed as a leading '*.'"),
    ({"allow": ["*.bad_name"]}, "'*.' must be followed by a domain name"),
    ({"allow": ["evil.example:0"]}, "the port must be a number from 1 to 65535"),
    ({"allow": ["evil.example:http"]}, "the port must be a number from 1 to 65535"),
    ({"allow": ["::1"]}, "write an IPv6 address in brackets"),
    ({"allow": ["999.1.1.1"]}, "is not an IPv4 address"),
    ({"allow": ["under_score.example"]}, "is not a host name or address"),
    ({"alow": ["evil.example"]}, "network.alow: Extra inputs are not permitted"),
])
def test_a_malformed_network_is_refused_saying_what_is_wrong(network: object, says: str) -> None:
    assert says in refusal(network)


def test_a_secret_names_a_host_a_header_a_variable_and_a_prefix() -> None:
    spec = SandboxSpec.model_validate({"network": {"allow": ["*.github.com"], "secrets": [
        {"host": "API.github.com", "header": "Authorization", "env": "GITHUB_TOKEN", "prefix": "Bearer "},
        {"host": "uploads.github.com", "header": "Authorization", "env": "GITHUB_TOKEN"}]}})
    assert isinstance(spec.network, NetworkPolicy)
    assert [s.host for s in spec.network.secrets or []] == ["api.github.com", "uploads.github.com"]
    assert spec.network.brokered() == ["GITHUB_TOKEN"]


SECRET = {"host": "api.evil.example", "header": "Authorization", "env": "TOKEN"}


@pytest.mark.parametrize(("secret", "says"), [
    (dict(SECRET, host="other.example"), "secret host 'other.example' is not on the allow-list"),
    (dict(SECRET, host="api.evil.example:443"), "without a port or a '*.'"),
    (dict(SECRET, host="*.evil.example"), "without a port or a '*.'"),
    (dict(SECRET, header="Host"), "secret header 'Host' frames or routes the request"),
    (dict(SECRET, header="Proxy-Authorization"), "frames or routes the request"),
    (dict(SECRET, header="Bad Header"), "is not an HTTP header name"),
    (dict(SECRET, env="1TOKEN"), "is not an environment variable's name"),
    (dict(SECRET, prefix="Bearer\r\nX-Evil: 1"), "no control characters"),
    (dict(SECRET, value="sk-123"), "value: Extra inputs are not permitted"),
])
def test_a_malformed_secret_is_refused_saying_what_is_wrong(secret: dict[str, str], says: str) -> None:
    assert says in refusal({"allow": ["api.evil.example"], "secrets": [secret]})


def test_two_secrets_for_one_hosts_header_are_refused() -> None:
    assert "two secrets for 'api.evil.example''s Authorization header" in refusal(
        {"allow": ["api.evil.example"], "secrets": [SECRET, dict(SECRET, env="OTHER")]})


def test_a_run_without_network_writes_tool_calls_and_results_as_before_the_field_existed() -> None:
    from tether.contracts import ToolCall, ToolCallInput, ToolResult

    call = ToolCallInput(workflow_id="w", step=1, index=0, call=ToolCall(name="shell", arguments={}),
                         container_id="c", timeout_seconds=1, output_limit_bytes=256)
    assert "network" not in call.model_dump() and "network" not in call.model_dump_json()
    assert "egress_denied" not in ToolResult(exit_code=0).model_dump_json()
    allowing = call.model_copy(update={"network": NetworkPolicy(allow=["evil.example"])})
    assert ToolCallInput.model_validate_json(allowing.model_dump_json()) == allowing
