"""The one small interface every model provider implements, and the errors it raises.

Providers never retry: Temporal owns retries, so every attempt is visible in the event
history. A provider classifies each failure as transient (raise `TransientModelError`, or
let a connection error propagate) or permanent (raise `PermanentModelError`), and the model
activity turns the latter into a non-retryable `ApplicationError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from tether.contracts import Message, ModelSpec, ModelTurn, ToolSpec


class ModelError(Exception):
    """A model call failed."""


class TransientModelError(ModelError):
    """Worth retrying: rate limits, server errors, timeouts."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentModelError(ModelError):
    """Retrying cannot help: bad request, bad key, unknown model, context too long."""


class ModelProvider(Protocol):
    async def complete(
        self,
        spec: ModelSpec,
        messages: list[Message],
        tools: list[ToolSpec],
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> ModelTurn:
        """One model call. `tools` are the tools the model may call (maybe none).

        With `on_text`, the answer is streamed and `on_text` receives the whole text so far
        each time it grows, so a caller can show a long answer while it is being written. The
        returned turn is the same as without it; only when the text becomes visible differs.
        """
        ...
