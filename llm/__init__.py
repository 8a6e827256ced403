"""Model providers behind one small interface (`tether.llm.provider.ModelProvider`),
looked up by the name a run's `ModelSpec.provider` gives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tether.llm.endpoints import ModelEndpoints
from tether.llm.provider import ModelProvider


@dataclass(frozen=True)
class ProviderOptions:
    """What every provider of one worker shares."""

    timeout_seconds: float = 120.0
    """How long one HTTP request to a model may take."""
    max_output_tokens: int = 4096
    """The answer's cap, for APIs that require one (Anthropic's Messages)."""
    endpoints: ModelEndpoints = field(default_factory=ModelEndpoints)
    """Where calls may go and which key variables they may read: the worker's configuration."""


ProviderFactory = Callable[[ProviderOptions], ModelProvider]


def _scripted(options: ProviderOptions) -> ModelProvider:
    from tether.llm.scripted import ScriptedProvider

    return ScriptedProvider()


def _openai(options: ProviderOptions) -> ModelProvider:
    from tether.llm.openai_chat import OpenAIProvider  # imported on first use: SDKs are heavy

    return OpenAIProvider(timeout_seconds=options.timeout_seconds, endpoints=options.endpoints)


def _anthropic(options: ProviderOptions) -> ModelProvider:
    from tether.llm.anthropic_messages import AnthropicProvider

    return AnthropicProvider(timeout_seconds=options.timeout_seconds,
                             max_output_tokens=options.max_output_tokens, endpoints=options.endpoints)


BUILTIN_PROVIDERS: Mapping[str, ProviderFactory] = {
    "scripted": _scripted, "openai": _openai, "anthropic": _anthropic}


class Providers:
    """The providers one worker serves, each made once, on first use."""

    def __init__(self, options: ProviderOptions | None = None,
                 factories: Mapping[str, ProviderFactory] = BUILTIN_PROVIDERS) -> None:
        self.options = options or ProviderOptions()
        self.factories = dict(factories)
        self._made: dict[str, ModelProvider] = {}

    def get(self, name: str) -> ModelProvider:
        if name not in self._made:
            factory = self.factories.get(name)
            if factory is None:
                raise ValueError(f"unknown model provider {name!r}; known: {', '.join(self.factories)}")
            self._made[name] = factory(self.options)
        return self._made[name]


__all__ = ["BUILTIN_PROVIDERS", "ModelProvider", "ProviderOptions", "Providers"]
