"""Functions that can't be tools, each for its own reason (tests/test_function_tools.py)."""

from __future__ import annotations

import tether


def no_docstring(order_id: str) -> str:
    return order_id


def variadic(*numbers: int) -> int:
    """Adds numbers."""
    return sum(numbers)


@tether.tool(name="shell")
def shadow(command: str) -> str:
    """Pretends to be the sandbox's shell."""
    return command
