"""Where a model call may go and which of the worker's variables it may read: the worker's
configuration decides, never the run's input.

Whoever can start a workflow writes its input. Were a run's `base_url` and `api_key_env`
followed, any of them could send the worker's API keys, or any variable it holds (its
encryption keys), to a server of their own. So a run names an endpoint the worker configured
(`TETHER_MODEL_ENDPOINTS`), or none for the vendor's own (`<PROVIDER>_BASE_URL`, else the
vendor's URL, with the vendor's key variable). With `TETHER_ALLOW_INPUT_URLS`, a worker for
local development also follows a URL the run gives, and sends it no key of its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from tether.contracts import ModelSpec
from tether.llm.provider import PermanentModelError

ENDPOINTS_SETTING = "TETHER_MODEL_ENDPOINTS"
OPT_IN_SETTING = "TETHER_ALLOW_INPUT_URLS"


class ModelEndpoint(BaseModel):
    """One entry of `TETHER_MODEL_ENDPOINTS`: a server the worker sends model calls to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["openai", "anthropic"]
    base_url: str = Field(pattern=r"^https?://\S+$")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The worker's variable holding the key; none: a server that needs none, sent the placeholder."""


class EndpointRefused(PermanentModelError):
    """A run's model gives a URL, a key variable or an endpoint this worker did not configure."""


@dataclass(frozen=True)
class Vendor:
    base_url: str
    base_url_env: str
    key_env: str

    def url(self) -> str:
        """`<PROVIDER>_BASE_URL` on the worker, else the vendor's own."""
        return trimmed(os.environ.get(self.base_url_env) or self.base_url)


VENDORS = {
    "openai": Vendor("https://api.openai.com/v1", "OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "anthropic": Vendor("https://api.anthropic.com", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
}


@dataclass(frozen=True)
class Route:
    """Where one call goes, and the variable its key is read from (None: no key of the worker's)."""

    base_url: str
    key_env: str | None


@dataclass(frozen=True)
class ModelEndpoints:
    """The worker's model endpoints by name, and whether a run may give a URL of its own."""

    configured: Mapping[str, ModelEndpoint] = field(default_factory=dict)
    allow_input_urls: bool = False

    def route(self, spec: ModelSpec) -> Route:
        """Where `spec`'s calls go, or `EndpointRefused` saying which setting to use."""
        vendor = VENDORS[spec.provider]
        if spec.endpoint is not None:
            return self._named(spec)
        if spec.base_url is None and spec.api_key_env in (None, vendor.key_env):
            return Route(vendor.url(), vendor.key_env)
        # What an older input meant by a URL alone: that URL with the vendor's key variable.
        meant = spec if spec.api_key_env else spec.model_copy(update={"api_key_env": vendor.key_env})
        matches = self._agreeing(meant) or self._agreeing(spec)
        if len(matches) == 1:
            return self._named(spec.model_copy(update={"endpoint": matches[0]}))
        if spec.api_key_env in (None, vendor.key_env) and trimmed(spec.base_url or "") == vendor.url():
            return Route(vendor.url(), vendor.key_env)
        if matches:
            raise EndpointRefused(
                f"{spec.label}: its base_url and api_key_env fit the endpoints "
                f"{', '.join(matches)}: name one in the model (\"endpoint\": NAME)")
        if self.allow_input_urls and spec.base_url is not None and spec.api_key_env is None:
            return Route(trimmed(spec.base_url), None)
        raise EndpointRefused(self._refusal(spec))

    def _agreeing(self, spec: ModelSpec) -> list[str]:
        return [name for name, endpoint in sorted(self.configured.items())
                if endpoint.provider == spec.provider and agrees(spec, endpoint)]

    def _named(self, spec: ModelSpec) -> Route:
        endpoint = self.configured.get(spec.endpoint or "")
        if endpoint is None or endpoint.provider != spec.provider:
            raise EndpointRefused(
                f"{spec.label}: this worker has no {spec.provider} endpoint {spec.endpoint!r} in "
                f"{ENDPOINTS_SETTING} (it has: {self._names(spec.provider)})")
        if not agrees(spec, endpoint):
            raise EndpointRefused(
                f"{spec.label}: the endpoint {spec.endpoint!r} of {ENDPOINTS_SETTING} sets the URL "
                "and the key variable: drop base_url and api_key_env from the model")
        return Route(trimmed(endpoint.base_url), endpoint.api_key_env)

    def _refusal(self, spec: ModelSpec) -> str:
        given = " and ".join(part for part in (
            f"base_url {spec.base_url}" if spec.base_url is not None else "",
            f"api_key_env ${spec.api_key_env}" if spec.api_key_env is not None else "") if part)
        why = (f"{spec.label} gives its own {given}; a run names an endpoint configured on the "
               f"worker: add it to {ENDPOINTS_SETTING} there and give the model "
               f"\"endpoint\": NAME (this worker has: {self._names(spec.provider)})")
        if spec.api_key_env is None and not self.allow_input_urls:
            why += f", or, for local development, set {OPT_IN_SETTING}=1 to send it no key"
        return why

    def _names(self, provider: str) -> str:
        names = [name for name, e in sorted(self.configured.items()) if e.provider == provider]
        return ", ".join(names) or "none"


def agrees(spec: ModelSpec, endpoint: ModelEndpoint) -> bool:
    """Whether what the spec says of the URL and key variable is what the endpoint says."""
    return ((spec.base_url is None or trimmed(spec.base_url) == trimmed(endpoint.base_url))
            and (spec.api_key_env is None or spec.api_key_env == endpoint.api_key_env))


def trimmed(url: str) -> str:
    return url.rstrip("/")
