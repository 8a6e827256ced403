"""`@tether.tool`: optional settings for a function tool. Plain functions need none."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "__tether_tool__"


@dataclass(frozen=True)
class ToolOptions:
    name: str | None = None
    """The tool's name for the model; the function's own name when unset."""
    timeout_seconds: float = 60.0
    """How long one attempt may take."""
    retries: int = 0
    """How often a transient failure is retried (by Temporal, each attempt in history)."""
    transient: tuple[type[BaseException], ...] = field(default=())
    """Exception types worth retrying; any other exception is the tool's error, told to the
    model at once."""


@overload
def tool(function: F) -> F: ...
@overload
def tool(*, name: str | None = None, timeout_seconds: float = 60.0, retries: int = 0,
         transient: tuple[type[BaseException], ...] = ()) -> Callable[[F], F]: ...


def tool(function: Any = None, **options: Any) -> Any:
    """Marks a function as a tether tool, with `ToolOptions`. Usable bare (`@tool`) or with
    options (`@tool(name="lookup", retries=3, transient=(ConnectionError,))`)."""
    settings = ToolOptions(**options)

    def mark(target: F) -> F:
        setattr(target, ATTRIBUTE, settings)
        return target

    return mark(function) if function is not None else mark


def options_of(function: Callable[..., Any]) -> ToolOptions | None:
    return getattr(function, ATTRIBUTE, None)
