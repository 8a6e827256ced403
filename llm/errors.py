"""Classifying a failed model call as transient (retry) or permanent (fail the step).

Temporal owns retries, so this is the one place that decides which failures are worth
another attempt. Both SDKs expose the same facts (a status code, the response headers, the
decoded error body), so the rules are written once, here, against those facts.

Every message says what to fix and never carries the API key: a server may echo the key it
received (OpenAI's 401 does, masked), so all text taken from a response is scrubbed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from tether.llm.connection import Connection
from tether.llm.provider import ModelError, PermanentModelError, TransientModelError

MAX_DETAIL_CHARS = 300
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
"""Timeout, conflict (OpenAI's "try again"), too early, rate limited; plus every 5xx."""
_CONTEXT_LENGTH_MARKERS = (
    "context_length", "context length", "context window", "maximum context",
    "prompt is too long", "too many tokens",
)


def status_error(
    conn: Connection, status: int, headers: Mapping[str, str], body: object
) -> ModelError:
    """The error for an HTTP error response from the model's endpoint."""
    # Scrub before shortening, so a key cut in half at the limit cannot leak either.
    detail = _shorten(_scrub(_detail_of(body), conn.secret))
    said = f"{conn.where} answered {status}" + (f": {detail}" if detail else "")
    lowered = detail.lower()
    if status == 429 and "insufficient_quota" in lowered:
        return PermanentModelError(f"{said}; the account is out of credit, check its billing")
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientModelError(said, retry_after=retry_after_seconds(headers))
    if any(marker in lowered for marker in _CONTEXT_LENGTH_MARKERS):
        return PermanentModelError(
            f"{said}; the conversation no longer fits the model's context window: "
            "use a model with a longer context or a tighter budget"
        )
    return PermanentModelError(f"{said}; {_hint(conn, status)}")


def timed_out(conn: Connection) -> TransientModelError:
    return TransientModelError(
        f"{conn.where} did not answer within {conn.timeout:g} s "
        "(raise $TETHER_MODEL_TIMEOUT_SECONDS for slow models)"
    )


def unreachable(conn: Connection, cause: BaseException | None) -> TransientModelError:
    reason = _scrub(f"{type(cause).__name__}: {cause}", conn.secret) if cause else "no answer"
    return TransientModelError(f"could not reach {conn.where} ({reason})")


def malformed(conn: Connection, what: str) -> TransientModelError:
    """A 200 whose body is not the provider's format.

    Treated as transient: in practice it is a proxy or load balancer answering in the
    model's place (an HTML error page, a truncated body), which a later attempt gets past.
    Temporal's retry policy bounds the attempts if the endpoint is simply wrong.
    """
    return TransientModelError(
        f"{conn.where} sent a response that is not a model answer ({what}); "
        "if this persists, check that the base URL points at the model's API"
    )


def broke_off(conn: Connection, reason: object) -> TransientModelError:
    """A stream that began and then failed: the connection dropped, the server sent an error
    event in place of the rest of the answer, or the body ended before the answer did.

    Transient: the server accepted the request, so it is this answer, not the request, that
    failed. `reason` is an exception, an error event's body or a sentence; all are scrubbed.
    """
    if isinstance(reason, BaseException):
        reason = f"{type(reason).__name__}: {reason}"
    detail = _shorten(_scrub(_detail_of(reason), conn.secret))
    return TransientModelError(f"the answer from {conn.where} broke off mid-stream ({detail})")


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, else `retry-after` (seconds or
    an HTTP date). None when absent or unreadable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; the parser leaves "-0000" naive
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _hint(conn: Connection, status: int) -> str:
    key = (f"the key in ${conn.key_env}" if conn.key_env else
           "the placeholder key (this endpoint gets no key of the worker's)")
    return {
        400: "the request was rejected; check the model name and its parameters",
        401: f"authentication failed: check {key}",
        402: "payment required: check the account's billing",
        403: f"{key} may not use this model: check its permissions",
        404: "not found: check the model name and the base URL",
        413: "the request is too large: shorten the conversation",
        422: "the request was not understood: check the model's parameters",
    }.get(status, "the request was refused; retrying will not help")


def _detail_of(body: object) -> str:
    """The human part of an error body: OpenAI and Anthropic both use `{"error": {...}}`."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            parts = [error.get("message"), error.get("code"), error.get("type")]
            text = " ".join(str(p) for p in parts if p)
        else:
            text = str(error)
    else:
        text = "" if body is None else str(body)
    return " ".join(text.split())


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
