"""Model providers behind one small interface (`llm.provider.ModelProvider`)."""

from __future__ import annotations

from llm.provider import ModelProvider
from llm.scripted import ScriptedProvider


def provider_for(name: str) -> ModelProvider:
    """The provider adapter for `ModelSpec.provider`. Imported lazily: SDKs are heavy."""
    if name == "scripted":
        return ScriptedProvider()
    if name == "openai":
        from llm.openai_chat import OpenAIProvider

        return OpenAIProvider()
    if name == "anthropic":
        from llm.anthropic_messages import AnthropicProvider

        return AnthropicProvider()
    raise ValueError(f"unknown model provider {name!r}")
