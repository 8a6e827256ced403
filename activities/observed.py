"""A model call, observed: its `chat {model}` span and its GenAI client metrics, around the
provider's own call only (not the store reads before it), so both measure the provider."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence

from temporalio import activity
from tether import tracing
from tether.contracts import Message, ModelSpec, ModelTurn
from tether.llm.pricing import cost_usd
from tether.llm.provider import PermanentModelError, TransientModelError
from tether.metrics import WorkerMetrics

ERROR_TYPES = {PermanentModelError: "ModelPermanentError", TransientModelError: "ModelTransientError"}
"""The names the activity gives these errors when it raises them for Temporal."""


async def observed(call: Awaitable[ModelTurn], spec: ModelSpec, *, conversation_id: str,
                   step: int, messages: Sequence[Message], base_url: str | None) -> ModelTurn:
    # The activity's meter: the worker's runtime serves it, labelled with the activity type.
    metrics = WorkerMetrics(activity.metric_meter())
    started = time.monotonic()
    with tracing.chat_span(spec, conversation_id=conversation_id, step=step,
                           messages=messages) as span:
        try:
            turn = await call
        except BaseException as error:
            error_type = ERROR_TYPES.get(type(error), type(error).__name__)
            tracing.failed(span, error_type, str(error))
            metrics.model_call(spec, seconds=time.monotonic() - started, usage=None,
                               response_model=None, cost_usd=None, error_type=error_type)
            raise
        price = cost_usd(spec, turn.usage, base_url=base_url)
        tracing.chat_answered(span, spec, turn, price)
    metrics.model_call(spec, seconds=time.monotonic() - started, usage=turn.usage,
                       response_model=turn.model, cost_usd=price)
    return turn
