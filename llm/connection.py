"""Where a model call goes and with which key, resolved on the worker at call time.

Only the *name* of the key's environment variable travels in a run's input (and so in
Temporal's history); the value is read here, on the worker, just before the call. Reading it
per call also picks up a rotated key without restarting the worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tether.contracts import ModelSpec
from tether.llm.provider import PermanentModelError

DEFAULT_TIMEOUT_SECONDS = 120.0
PLACEHOLDER_KEY = "tether-no-key"
"""Sent to self-hosted servers (vLLM, Ollama, llama.cpp) that ignore the key but whose
OpenAI-compatible SDKs refuse to send a request without one."""


@dataclass(frozen=True)
class _Defaults:
    base_url: str
    base_url_env: str
    key_env: str


_DEFAULTS = {
    "openai": _Defaults("https://api.openai.com/v1", "OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "anthropic": _Defaults("https://api.anthropic.com", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
}


@dataclass(frozen=True)
class Connection:
    """Everything a provider needs to reach its endpoint. `repr` never shows the key."""

    base_url: str
    key_env: str
    api_key: str = field(repr=False)
    timeout: float
    where: str
    """`provider:model at URL`, for error messages."""

    @property
    def secret(self) -> str | None:
        """The value to scrub from anything we report; the placeholder is no secret."""
        return None if self.api_key == PLACEHOLDER_KEY else self.api_key


def base_url_for(spec: ModelSpec) -> str:
    """The endpoint: the spec's own, else `<PROVIDER>_BASE_URL`, else the vendor's."""
    defaults = _DEFAULTS[spec.provider]
    url = spec.base_url or os.environ.get(defaults.base_url_env) or defaults.base_url
    return url.rstrip("/")


def connection_for(spec: ModelSpec, *, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> Connection:
    """Resolve the endpoint, key and timeout for one call, or say what to configure."""
    defaults = _DEFAULTS[spec.provider]
    base_url = base_url_for(spec)
    key_env = spec.api_key_env or defaults.key_env
    api_key = os.environ.get(key_env, "").strip()
    if not api_key:
        if base_url == defaults.base_url:
            raise PermanentModelError(
                f"no API key for {spec.label}: set the environment variable ${key_env} "
                "on the worker (or name another one with the model's api_key_env)"
            )
        api_key = PLACEHOLDER_KEY
    return Connection(
        base_url=base_url,
        key_env=key_env,
        api_key=api_key,
        timeout=timeout_seconds,
        where=f"{spec.label} at {base_url}",
    )
