"""How results read on a terminal: shared by the `tether` CLI and the demo."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_result(console: Console, result: Any, links: dict[str, str]) -> None:
    colour = {"completed": "green", "budget_exhausted": "yellow"}.get(result.status, "red")
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    table.add_row("status", f"[bold {colour}]{result.status}[/]")
    table.add_row("stop reason", result.stop_reason)
    table.add_row("output", f"[bold]{result.output}[/]" if result.output else "[dim]—[/]")
    table.add_row("steps", str(result.steps))
    u = result.usage
    cost = f"${u.cost_usd:.4f}" + ("" if result.cost_known else " [yellow](price unknown for some steps)[/]")
    table.add_row("usage", f"{u.input_tokens} in · {u.output_tokens} out · {cost}")
    table.add_row("seconds", f"{result.seconds:.2f}")
    table.add_row("workflow id", links["workflow_id"])
    table.add_row("web UI", links["ui"])
    table.add_row("history", links["show"])
    console.print(table)
