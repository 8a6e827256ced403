"""Conversation messages, tool calls and their results: what the model reads and writes.

Provider-neutral: every provider adapter translates from and to these shapes. `Usage` lives
here because every model turn carries one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class Strict(BaseModel):
    """Unknown fields are an error: a typo in a run's input must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Usage(Strict):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 10),
        )


class ToolCall(Strict):
    """A call the model asked for. `id` is assigned by the provider or by tether."""

    id: str = ""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResult(Strict):
    """The result of every tool, whatever it is."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    timed_out: bool = False
    duration_ms: int = 0
    egress_denied: list[str] = Field(default_factory=list)
    """`HOST:PORT` of each destination the run's network policy refused during the call."""
    egress_bytes: int = Field(default=0, ge=0)
    """Bytes the call moved through the egress proxy, both ways (`budget.max_egress_mb`)."""

    @model_serializer(mode="wrap")
    def _without_empty_egress(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Absent unless something was refused: a run without network writes, and its model
        # reads, the very results it did before the field existed.
        data = handler(self)
        if isinstance(data, dict):
            for field in ("egress_denied", "egress_bytes"):
                if not data.get(field):
                    data.pop(field, None)
        return data


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
    model: str | None = None
    """The model the provider says answered (a dated version of the one asked for, say)."""
    finish_reason: str | None = None
    """Why the provider says the answer ended (`stop`, `tool_calls`, `end_turn`, `length`...)."""
