"""`llm.pricing` reads genai-prices' bundled table: known models cost money, unknown ones None,
and a price given with the model wins over the table."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tether.contracts import ModelPrice, ModelSpec, Script, ScriptTurn, Usage
from tether.llm.pricing import cost_usd, price_known

TURN = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
LOCAL_URL = "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "anthropic:claude-3-5-haiku-latest"])
def test_a_known_model_has_a_positive_cost(model: str) -> None:
    spec = ModelSpec.model_validate(model)
    cost = cost_usd(spec, TURN)
    assert cost is not None
    assert 0 < cost < 100  # a million tokens each way on a small model: cents to dollars
    assert price_known(spec)


def test_output_tokens_cost_more_than_input_tokens_on_gpt_4o_mini() -> None:
    spec = ModelSpec.model_validate("openai:gpt-4o-mini")
    reading = cost_usd(spec, Usage(input_tokens=1000))
    writing = cost_usd(spec, Usage(output_tokens=1000))
    assert reading is not None and writing is not None
    assert writing > reading > 0


def test_cost_grows_with_the_tokens_used() -> None:
    spec = ModelSpec.model_validate("anthropic:claude-3-5-haiku-latest")
    small = cost_usd(spec, Usage(input_tokens=100, output_tokens=10))
    large = cost_usd(spec, Usage(input_tokens=10_000, output_tokens=1_000))
    assert small is not None and large is not None
    assert large == pytest.approx(small * 100)


def test_an_unknown_model_has_no_price() -> None:
    spec = ModelSpec.model_validate("openai:no-such-model-anywhere")
    assert cost_usd(spec, TURN) is None
    assert not price_known(spec)


def test_a_model_on_a_local_server_has_no_price_even_with_a_vendors_model_name() -> None:
    spec = ModelSpec(provider="openai", name="gpt-4o-mini", endpoint="local")
    assert cost_usd(spec, TURN, base_url=LOCAL_URL) is None


def test_a_model_on_another_vendors_endpoint_is_priced_at_that_vendors_rates() -> None:
    spec = ModelSpec(provider="openai", name="openai/gpt-4o-mini", endpoint="router")
    assert (cost_usd(spec, TURN, base_url="https://openrouter.ai/api/v1") or 0) > 0


def test_the_scripted_model_is_free_unless_its_script_gives_a_cost() -> None:
    spec = ModelSpec(provider="scripted", script=Script(turns=[ScriptTurn(text="done")]))
    assert cost_usd(spec, TURN) == 0.0
    assert cost_usd(spec, Usage(input_tokens=5, cost_usd=0.25)) == 0.25
    assert price_known(spec)


def test_a_price_given_with_the_model_makes_an_unknown_model_priced() -> None:
    spec = ModelSpec(
        provider="openai", name="llama3", endpoint="local",
        price=ModelPrice(input_per_mtok_usd=0.5, output_per_mtok_usd=2.0),
    )
    assert price_known(spec, base_url=LOCAL_URL)
    assert cost_usd(spec, Usage(input_tokens=2_000_000, output_tokens=250_000),
                    base_url=LOCAL_URL) == pytest.approx(1.5)


def test_a_price_given_with_the_model_wins_over_the_price_table() -> None:
    listed = ModelSpec.model_validate("openai:gpt-4o-mini")
    negotiated = listed.model_copy(
        update={"price": ModelPrice(input_per_mtok_usd=1.0, output_per_mtok_usd=0.0)}
    )
    assert cost_usd(negotiated, TURN) == pytest.approx(1.0)
    assert cost_usd(negotiated, TURN) != cost_usd(listed, TURN)


def test_a_price_can_be_given_in_a_runs_json_input() -> None:
    spec = ModelSpec.model_validate({
        "provider": "anthropic", "name": "claude-next",
        "price": {"input_per_mtok_usd": 3, "output_per_mtok_usd": 15},
    })
    assert cost_usd(spec, Usage(input_tokens=1000, output_tokens=1000)) == pytest.approx(0.018)


def test_a_price_of_zero_is_a_known_price_and_costs_nothing() -> None:
    spec = ModelSpec(
        provider="openai", name="in-house", endpoint="local",
        price=ModelPrice(input_per_mtok_usd=0, output_per_mtok_usd=0),
    )
    assert price_known(spec, base_url=LOCAL_URL)
    assert cost_usd(spec, TURN, base_url=LOCAL_URL) == 0.0


@pytest.mark.parametrize("field", ["input_per_mtok_usd", "output_per_mtok_usd"])
def test_a_negative_price_is_refused(field: str) -> None:
    price = {"input_per_mtok_usd": 1.0, "output_per_mtok_usd": 1.0, field: -0.01}
    with pytest.raises(ValidationError, match=field):
        ModelPrice.model_validate(price)


def test_a_price_with_a_misspelt_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="input_per_token_usd"):
        ModelPrice.model_validate(
            {"input_per_token_usd": 1.0, "input_per_mtok_usd": 1.0, "output_per_mtok_usd": 1.0}
        )


def test_a_price_given_to_the_scripted_model_prices_its_tokens() -> None:
    spec = ModelSpec(
        provider="scripted", script=Script(turns=[ScriptTurn(text="done")]),
        price=ModelPrice(input_per_mtok_usd=10, output_per_mtok_usd=30),
    )
    assert cost_usd(spec, Usage(input_tokens=100_000, output_tokens=10_000)) == pytest.approx(1.3)
