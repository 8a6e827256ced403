"""What a model turn cost, from `genai-prices` (pydantic's maintained price table).

The table ships inside the package, so pricing needs no network; upgrading the package
updates prices. A model the table does not know (a self-hosted one, a brand-new one) has no
price: `cost_usd` returns None rather than a made-up 0.0, so a dollar budget can say it
cannot be enforced instead of silently passing, unless the run's input gives the model a
price (`ModelSpec.price`), which then wins over the table.
"""

from __future__ import annotations

import genai_prices
from tether.contracts import ModelSpec, Usage
from tether.llm.endpoints import VENDORS

TOKENS_PER_PRICE_UNIT = 1_000_000


def cost_usd(spec: ModelSpec, usage: Usage, *, base_url: str | None = None) -> float | None:
    """The price of `usage` on `spec`'s model in dollars, or None when the price is unknown.
    `base_url` is where the calls go (the worker's endpoint for the model); None: the vendor's.

    A price given with the model wins, for any provider. Otherwise the scripted model costs
    nothing unless its script says otherwise (a turn's `usage`).
    """
    if spec.price is not None:
        return (
            usage.input_tokens * spec.price.input_per_mtok_usd
            + usage.output_tokens * spec.price.output_per_mtok_usd
        ) / TOKENS_PER_PRICE_UNIT
    if spec.provider == "scripted":
        return usage.cost_usd
    try:
        price = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
            spec.name,
            # Priced by endpoint: a model served by another vendor (OpenRouter, Groq, ...) at
            # that vendor's rates, and a local server's models, which match no vendor, unknown
            # rather than at OpenAI's prices.
            provider_api_url=base_url or VENDORS[spec.provider].url(),
        )
    except (LookupError, ValueError):
        return None
    return float(price.total_price)


def price_known(spec: ModelSpec, *, base_url: str | None = None) -> bool:
    """Whether `cost_usd` can price this model; lets a run warn before a dollar budget is moot."""
    return cost_usd(spec, Usage(), base_url=base_url) is not None

