"""Provider-neutral conversation messages and the result of one model turn."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from workflows.types import ToolCall, Usage


class Message(BaseModel):
    """One message of a conversation, in the shape every provider adapter translates from."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """Assistant messages only: the calls the model asked for."""
    tool_call_id: str | None = None
    """Tool messages only: which call this is the result of."""
    name: str | None = None
    """Tool messages only: the tool's name."""


class ModelTurn(BaseModel):
    """What a provider returns for one call: text and/or tool calls, and the tokens used."""

    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
