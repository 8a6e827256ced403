"""One call's SDK client, for both official SDKs, and the classification of every failure
before an answer begins (the stream modules classify those that come after).

The `openai` and `anthropic` SDKs are generated from the same template: their exceptions
share names and meanings, so one function serves both.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from tether.llm import errors
from tether.llm.connection import Connection


@asynccontextmanager
async def sdk_client(sdk: ModuleType, client_class: type[Any], conn: Connection) -> AsyncIterator[Any]:
    # A fresh client per call: a model call takes seconds and a handshake milliseconds, and
    # this way no connection pool outlives the call or straddles event loops.
    client = client_class(
        api_key=conn.api_key,
        base_url=conn.base_url,
        timeout=conn.timeout,
        # Temporal owns retries: every attempt shows in the event history, with its backoff.
        max_retries=0,
    )
    # `from None` everywhere: the SDK's exception holds the request, headers and all.
    try:
        async with client:
            yield client
    except sdk.APIStatusError as exc:
        raise errors.status_error(conn, exc.status_code, exc.response.headers, exc.body) from None
    except sdk.APITimeoutError:
        raise errors.timed_out(conn) from None
    except sdk.APIConnectionError as exc:
        raise errors.unreachable(conn, exc.__cause__) from None
    except (sdk.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.malformed(conn, type(exc).__name__) from None
