"""Where a model call goes and with which key, resolved on the worker at call time.

The endpoint and the key's variable are the worker's (`llm.endpoints`); the key's value is
read here, just before the call, never earlier: it stays out of Temporal's history, and a
rotated key needs no restart of the worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tether.contracts import ModelSpec
from tether.llm.endpoints import VENDORS, ModelEndpoints
from tether.llm.provider import PermanentModelError

DEFAULT_TIMEOUT_SECONDS = 120.0
PLACEHOLDER_KEY = "tether-no-key"
"""Sent to self-hosted servers (vLLM, Ollama, llama.cpp) that ignore the key but whose
OpenAI-compatible SDKs refuse to send a request without one, and to any URL a run gave."""


@dataclass(frozen=True)
class Connection:
    """Everything a provider needs to reach its endpoint. `repr` never shows the key."""

    base_url: str
    key_env: str | None
    """None: the worker sends this endpoint no key of its own."""
    api_key: str = field(repr=False)
    timeout: float
    where: str
    """`provider:model at URL`, for error messages."""

    @property
    def secret(self) -> str | None:
        """The value to scrub from anything we report; the placeholder is no secret."""
        return None if self.api_key == PLACEHOLDER_KEY else self.api_key


def connection_for(spec: ModelSpec, endpoints: ModelEndpoints, *,
                   timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Connection:
    """Resolve the endpoint, key and timeout for one call, or say what to configure."""
    route = endpoints.route(spec)
    api_key = os.environ.get(route.key_env, "").strip() if route.key_env else ""
    if not api_key:
        if route.key_env and route.base_url == VENDORS[spec.provider].base_url:
            raise PermanentModelError(
                f"no API key for {spec.label}: set the environment variable ${route.key_env} "
                "on the worker (or configure an endpoint with another in TETHER_MODEL_ENDPOINTS)"
            )
        api_key = PLACEHOLDER_KEY
    return Connection(
        base_url=route.base_url,
        key_env=route.key_env,
        api_key=api_key,
        timeout=timeout_seconds,
        where=f"{spec.label} at {route.base_url}",
    )
