"""The classification rules of `llm.errors`, without a network (the wire tests use them too)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from tether.llm.connection import Connection
from tether.llm.errors import retry_after_seconds, status_error
from tether.llm.provider import PermanentModelError, TransientModelError

SECRET = "sk-very-secret-key-0123456789"
CONN = Connection(
    base_url="https://models.example/v1", key_env="MY_MODEL_KEY", api_key=SECRET,
    timeout=30.0, where="openai:gpt-x at https://models.example/v1",
)


def openai_body(message: str, code: str | None = None) -> dict:
    return {"message": message, "type": "invalid_request_error", "code": code}


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504, 529])
def test_rate_limits_timeouts_conflicts_and_server_errors_are_transient(status: int) -> None:
    error = status_error(CONN, status, {}, openai_body("busy"))
    assert isinstance(error, TransientModelError)
    assert f"answered {status}: busy" in str(error)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422])
def test_client_errors_are_permanent(status: int) -> None:
    error = status_error(CONN, status, {}, openai_body("nope"))
    assert isinstance(error, PermanentModelError)
    assert str(error).startswith(f"{CONN.where} answered {status}: nope")


def test_a_401_tells_which_environment_variable_to_check() -> None:
    error = status_error(CONN, 401, {}, openai_body("bad key"))
    assert "check the key in $MY_MODEL_KEY" in str(error)


def test_a_404_points_at_the_model_name_and_base_url() -> None:
    error = status_error(CONN, 404, {}, openai_body("The model `gpt-x` does not exist"))
    assert "check the model name and the base URL" in str(error)


def test_an_exhausted_quota_is_permanent_although_it_is_a_429() -> None:
    body = openai_body("You exceeded your current quota", "insufficient_quota")
    error = status_error(CONN, 429, {"retry-after": "1"}, body)
    assert isinstance(error, PermanentModelError)
    assert "check its billing" in str(error)


@pytest.mark.parametrize("message", [
    "This model's maximum context length is 128000 tokens. However, you requested 130000.",
    "prompt is too long: 210000 tokens > 200000 maximum",
])
def test_a_context_length_error_says_the_conversation_no_longer_fits(message: str) -> None:
    error = status_error(CONN, 400, {}, openai_body(message))
    assert isinstance(error, PermanentModelError)
    assert "no longer fits the model's context window" in str(error)


def test_the_key_is_scrubbed_from_text_the_server_sent_back() -> None:
    error = status_error(CONN, 401, {}, openai_body(f"Incorrect API key provided: {SECRET}"))
    assert SECRET not in str(error)
    assert "Incorrect API key provided: ***" in str(error)


def test_a_key_at_the_cut_of_a_long_detail_is_scrubbed_before_the_cut() -> None:
    message = "x" * 280 + SECRET
    error = status_error(CONN, 400, {}, openai_body(message))
    assert SECRET[:10] not in str(error)


def test_an_error_body_that_is_not_json_is_quoted_as_text() -> None:
    error = status_error(CONN, 502, {}, "<html>Bad Gateway</html>")
    assert "answered 502: <html>Bad Gateway</html>" in str(error)


def test_an_anthropic_error_body_is_read_from_its_error_object() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = status_error(CONN, 529, {}, body)
    assert "answered 529: Overloaded overloaded_error" in str(error)


def test_retry_after_in_seconds_is_read() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7.0


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "7"}) == 1.5


def test_retry_after_as_an_http_date_is_the_time_left_until_then() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds({"retry-after": header}, now=now.timestamp()) == 30.0


def test_retry_after_in_the_past_means_now() -> None:
    header = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after_seconds({"retry-after": header}) == 0.0


@pytest.mark.parametrize("headers", [{}, {"retry-after": "soon"}, {"retry-after-ms": "x"}])
def test_a_missing_or_unreadable_retry_after_is_none(headers: dict[str, str]) -> None:
    assert retry_after_seconds(headers) is None


def test_a_429_carries_the_retry_after_it_was_given() -> None:
    error = status_error(CONN, 429, {"retry-after": "3"}, openai_body("slow down"))
    assert isinstance(error, TransientModelError)
    assert error.retry_after == 3.0
