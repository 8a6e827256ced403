"""How results read on a terminal: shared by the `tether` CLI and the demo.

Everything a run produced (tool arguments and outputs, model text, error messages, a reason a
person typed) reaches the terminal through `literal`: it is never read as Rich markup, and
terminal control and escape sequences in it are shown as visible escapes (`\\x1b`, `\\r`,
`\\u202e`) instead of acting on the terminal. What an operator reads, and approves, is what
the run holds: a model or a tool can neither hide text nor forge it.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

_KEPT = frozenset("\n\t")
"""Controls that lay text out without hiding any of it: kept as they are."""
_NAMED = {"\r": "\\r", "\x08": "\\b"}
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
characters, soft hyphen, byte-order mark, tag characters), lone surrogates, and the line and
paragraph separators: each can move the cursor, recolour, hide, reorder or fake text."""


def _visible(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    return char not in _KEPT and unicodedata.category(char) in _UNSAFE_CATEGORIES


def literal(value: Any, style: str = "") -> Text:
    """Run-produced text, safe to print: a `Text` (never parsed as markup), with every
    terminal control, escape and invisible format character written out as a visible
    escape. Newlines and tabs stay. Non-strings are printed as `str(value)`."""
    text = value if isinstance(value, str) else str(value)
    if any(_unsafe(char) for char in text):
        text = "".join(_visible(char) if _unsafe(char) else char for char in text)
    return Text(text, style=style)


def clipped(value: Any, limit: int) -> Text:
    """`literal(value)`, cut to `limit` characters with a note saying how much was cut, so a
    shortened view never passes for the whole."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return literal(text)
    shown = literal(text[:limit])
    shown.append(f" … ({len(text) - limit} more characters)", style="dim")
    return shown


def print_result(console: Console, result: Any, links: dict[str, str]) -> None:
    colour = {"completed": "green", "budget_exhausted": "yellow"}.get(result.status, "red")
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    table.add_row("status", literal(result.status, f"bold {colour}"))
    table.add_row("stop reason", literal(result.stop_reason))
    table.add_row("output", literal(result.output, "bold") if result.output else Text("—", "dim"))
    table.add_row("steps", str(result.steps))
    u = result.usage
    cost = Text(f"${u.cost_usd:.4f}")
    if not result.cost_known:
        cost.append(" (price unknown for some steps)", style="yellow")
    table.add_row("usage", Text(f"{u.input_tokens} in · {u.output_tokens} out · ") + cost)
    table.add_row("seconds", f"{result.seconds:.2f}")
    if result.artifacts or result.skipped_artifacts:
        skipped = f", {len(result.skipped_artifacts)} skipped" if result.skipped_artifacts else ""
        table.add_row("artifacts", Text(f"{len(result.artifacts)} file(s){skipped} · ")
                      + literal(f"tether artifacts {links['workflow_id']}"))
    console.print(table)
    print_links(console, links)


def print_links(console: Console, links: dict[str, str]) -> None:
    """The run's id, Web UI link and history command, each on one line however narrow the
    terminal: a link broken across lines is no longer a link."""
    for label, key in (("workflow id", "workflow_id"), ("web UI", "ui"), ("history", "show")):
        console.print(Text(f"{label:<13}", "dim") + literal(links[key]), soft_wrap=True)
