"""The run's input, checked before anything runs."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from tether.contracts import AgentRunInput


def parse_input(raw: Any) -> AgentRunInput:
    """Validates the run's input; a malformed one fails the run at once, never retried."""
    try:
        return AgentRunInput.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        )
        raise ApplicationError(
            f"invalid AgentRun input: {problems}", type="InvalidInput", non_retryable=True
        ) from None
