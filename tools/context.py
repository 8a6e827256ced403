"""What a function tool can know of the call it serves, while it serves it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class ToolContext:
    idempotency_key: str
    """`<workflow id>/<step>/<call index>`: the same for every attempt of this call, so the
    function can make its own side effects (an order, a ticket) happen once."""
    workflow_id: str
    step: int
    attempt: int
    """1 for the first attempt; more when Temporal retries a transient failure."""


_current: ContextVar[ToolContext | None] = ContextVar("tether_tool_context", default=None)


def tool_context() -> ToolContext:
    """The context of the tool call running now; an error outside one."""
    context = _current.get()
    if context is None:
        raise LookupError("tool_context() is only available inside a tether tool call")
    return context


def serving(context: ToolContext) -> object:
    """Makes `context` the current one; returns the token `done` takes."""
    return _current.set(context)


def done(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
