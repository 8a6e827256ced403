"""`tether list --tree`: each run with its sub-agents under it, indented by depth. A child
whose parent is not among the listed runs is shown at the top level, so none is hidden."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console
from rich.text import Text
from tether.cli.run_table import STATE_COLOURS
from tether.contracts.listing import RunListing

Literal = Callable[[str, str], Text]


def arranged(runs: Sequence[RunListing]) -> list[tuple[int, RunListing]]:
    """The runs in listing order, each followed by its children (in listing order), with depths."""
    listed = {run.workflow_id for run in runs}
    children: dict[str, list[RunListing]] = {}
    for run in runs:
        if run.parent_id in listed:
            children.setdefault(run.parent_id, []).append(run)
    out: list[tuple[int, RunListing]] = []

    def add(run: RunListing, depth: int) -> None:
        out.append((depth, run))
        for child in children.get(run.workflow_id, []):
            add(child, depth + 1)

    for run in runs:
        if run.parent_id not in listed:
            add(run, 0)
    return out


def print_tree(console: Console, runs: Sequence[RunListing], literal: Literal) -> None:
    if not runs:
        console.print("no runs")
        return
    for depth, run in arranged(runs):
        # The id is printed whole, after the indent, so it can be copied as it is.
        line = Text("   " * depth + ("└─ " if depth else "")) + literal(run.workflow_id, "bold")
        line += Text("  ") + literal(run.state, STATE_COLOURS.get(run.state, "cyan"))
        if run.steps is not None:
            line += Text(f"  {run.steps} steps")
        if run.cost_usd is not None:
            line += Text(f"  ${run.cost_usd:.4f}")
        console.print(line, soft_wrap=True)
