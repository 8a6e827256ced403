"""The egress policy's two checks, by name and then by every resolved address."""

from __future__ import annotations

import pytest
from tether.egress.policy import Entry, Policy, Refused


def policy(*entries: tuple[str, int | None]) -> Policy:
    return Policy([Entry(host, port) for host, port in entries])


def test_a_wildcard_allows_names_below_its_suffix_only() -> None:
    allow = policy(("*.pythonhosted.org", None))
    allow.check_name("files.pythonhosted.org", 443)
    for host in ("pythonhosted.org", "evilpythonhosted.org", "pythonhosted.org.evil.example"):
        with pytest.raises(Refused, match="not on the allow-list"):
            allow.check_name(host, 443)


def test_a_port_on_the_list_allows_that_port_only_and_none_allows_every_port() -> None:
    allow = policy(("github.com", 443), ("evil.example", None))
    allow.check_name("GitHub.com.", 443)
    allow.check_name("evil.example", 22)
    with pytest.raises(Refused):
        allow.check_name("github.com", 80)


def test_an_address_is_matched_as_an_address_whatever_its_spelling() -> None:
    allow = policy(("127.0.0.2", 8080), ("::1", 80))
    allow.check_name("::ffff:127.0.0.2", 8080)
    allow.check_name("[0:0::1]", 80)
    with pytest.raises(Refused):
        allow.check_name("127.0.0.3", 8080)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "::1", "fd00:ec2::254", "fe80::1", "::ffff:169.254.169.254"])
def test_a_name_resolving_to_an_address_that_is_not_public_is_refused(address: str) -> None:
    with pytest.raises(Refused, match="not a public address and not on the allow-list"):
        policy(("evil.example", None)).pick_address("evil.example", 80, [address])


def test_a_non_public_address_on_the_list_may_be_reached_by_name() -> None:
    allow = policy(("registry.internal", 5000), ("10.1.2.3", 5000))
    assert allow.pick_address("registry.internal", 5000, ["10.1.2.3"]) == "10.1.2.3"
    with pytest.raises(Refused):
        allow.pick_address("registry.internal", 5001, ["10.1.2.3"])


def test_the_address_connected_to_is_the_first_that_passed_the_check() -> None:
    allow = policy(("evil.example", None))
    assert allow.pick_address("evil.example", 443, ["127.0.0.1", "11.0.0.1"]) == "11.0.0.1"


def test_a_name_that_does_not_resolve_is_refused_saying_so() -> None:
    with pytest.raises(Refused, match="the name does not resolve"):
        policy(("evil.example", None)).pick_address("evil.example", 443, [])
