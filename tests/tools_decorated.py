"""Function tools that use `tether.tool` options and `tether.tool_context()`."""

from __future__ import annotations

import tether
from pydantic import BaseModel

TICKETS: dict[str, Ticket] = {}
"""Tickets by idempotency key: a retried call finds its ticket instead of opening another."""
ATTEMPTS: dict[str, int] = {}


class Ticket(BaseModel):
    number: int
    title: str
    key: str


@tether.tool(name="open_ticket")
def create_ticket(title: str, priority: int = 3) -> Ticket:
    """Open a support ticket."""
    key = tether.tool_context().idempotency_key
    if key not in TICKETS:
        TICKETS[key] = Ticket(number=len(TICKETS) + 1, title=title, key=key)
    return TICKETS[key]


@tether.tool(retries=3, transient=(ConnectionError,))
async def flaky_lookup(failures: int) -> str:
    """Fails with a connection error `failures` times, then answers."""
    context = tether.tool_context()
    ATTEMPTS[context.idempotency_key] = context.attempt
    if context.attempt <= failures:
        raise ConnectionError(f"attempt {context.attempt} could not connect")
    return f"answered on attempt {context.attempt}"
