"""`tether list` as a table that fits the terminal without ever breaking a run id: a person
copies ids from it. The id and state columns never wrap; when the terminal is too narrow for
every column, the least needed give way (the model first, then the start time, the cost, the
steps), and the title says which; an id wider than the terminal itself gets a line of its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text
from tether.contracts.listing import RunListing

STATE_COLOURS = {"completed": "green", "awaiting_approval": "yellow", "budget_exhausted": "yellow",
                 "failed": "red", "cancelled": "dim", "terminated": "red", "timed_out": "red"}
MODEL_MIN = 10
"""The model column folds, but not narrower than this: below, it is dropped instead."""

Literal = Callable[[str, str], Text]
"""`render.literal`: run-produced text made safe to print, with a style."""


def _local(at: datetime | None) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else ""


COLUMNS: list[tuple[str, str, Callable[[RunListing], tuple[str, str]]]] = [
    # name, justify, (text, style) of a run; in order of need: the last give way first.
    ("workflow id", "left", lambda r: (r.workflow_id, "")),
    ("state", "left", lambda r: (r.state, STATE_COLOURS.get(r.state, "cyan"))),
    ("steps", "right", lambda r: ("" if r.steps is None else str(r.steps), "")),
    ("cost $", "right", lambda r: ("" if r.cost_usd is None else f"{r.cost_usd:.4f}", "")),
    ("started", "left", lambda r: (_local(r.started_at), "")),
    ("model", "left", lambda r: (r.model or "", "")),
]


def _table_width(widths: Sequence[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1  # a space each side and a rule between columns


def print_run_table(console: Console, runs: Sequence[RunListing], title: str, literal: Literal) -> None:
    """The runs as a table at the console's width."""
    cells = [[literal(*cell(r)) for _, _, cell in COLUMNS] for r in runs]
    widths = [max([cell_len(name)] + [row[i].cell_len for row in cells])
              for i, (name, _, _) in enumerate(COLUMNS)]
    if _table_width(widths[:2]) > console.width:
        console.print(Text(title, "bold"))
        for row in cells:  # wider than the terminal: the terminal may wrap the line, never cut it
            console.print(row[0] + Text("  ") + row[1], soft_wrap=True)
        return
    widths[-1] = min(widths[-1], MODEL_MIN)
    shown = len(COLUMNS)
    while _table_width(widths[:shown]) > console.width:
        shown -= 1
    hidden = [name for name, _, _ in COLUMNS[shown:]]
    if hidden:
        title += f" · {', '.join(hidden)}: too narrow, see --json"
    table = Table(title=title)
    for (name, justify, _), width in zip(COLUMNS[:shown], widths, strict=False):
        if name == "model":
            table.add_column(name, overflow="fold", min_width=width)
        else:
            table.add_column(name, justify=justify, no_wrap=True, min_width=width)  # type: ignore[arg-type]  # rich's Literal
    for row in cells:
        table.add_row(*row[:shown])
    console.print(table)
