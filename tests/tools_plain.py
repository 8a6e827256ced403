"""Function tools as a team would write them: plain typed functions with docstrings, no
import of tether. The suite's worker serves them (TETHER_TOOLS, set in conftest)."""

from __future__ import annotations

ORDERS = {"A-1": {"id": "A-1", "status": "shipped", "items": ["kettle", "mug"]}}


def lookup_order(order_id: str, include_items: bool = False) -> dict:
    """Look an order up by its id; with include_items, list what it holds."""
    order = ORDERS.get(order_id)
    if order is None:
        raise KeyError(f"no order {order_id}")
    return order if include_items else {k: v for k, v in order.items() if k != "items"}


async def explode(reason: str) -> str:
    """Always fails, saying why."""
    raise RuntimeError(reason)
