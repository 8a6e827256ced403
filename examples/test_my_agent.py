"""An agent's tests, as a team that adds tether to its own worker writes them: the model
scripted, the team's own function tools called for real, and no Docker engine needed.

    pytest examples/test_my_agent.py
"""

from __future__ import annotations

import pytest
from tether.testing import TetherTestEnvironment, call, scripted

pytestmark = pytest.mark.asyncio

REFUNDED: list[str] = []


def lookup_order(order_id: str) -> dict[str, str]:
    """Look an order up by its id."""
    return {"order": order_id, "status": "shipped"}


def refund(order_id: str, reason: str) -> str:
    """Refund an order."""
    REFUNDED.append(order_id)
    return f"refunded {order_id}"


async def test_the_agent_answers_with_what_the_lookup_found():
    async with TetherTestEnvironment(tools=[lookup_order]) as env:
        result = await env.run({
            "task": "Where is order A-1?",
            "tools": ["lookup_order"],
            "model": scripted(call("lookup_order", order_id="A-1"), "Order A-1: {{last_output}}"),
        })
    assert result.status == "completed"
    assert result.output == 'Order A-1: {"order":"A-1","status":"shipped"}'


async def test_a_refund_waits_for_a_person_and_runs_once_approved():
    async with TetherTestEnvironment(tools=[refund]) as env:
        run = await env.start({
            "task": "Refund order A-1: it arrived broken",
            "tools": ["refund"],
            "approval": {"tools": ["refund"]},
            "model": scripted(call("refund", order_id="A-1", reason="broken"), "{{last_output}}"),
        })
        waiting = await run.waiting_call()
        assert (waiting.tool, REFUNDED) == ("refund", [])
        await run.approve(waiting.call_id)
        result = await run.result()
    assert result.output == '"refunded A-1"'
    assert REFUNDED == ["A-1"]
