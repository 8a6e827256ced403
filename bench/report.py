"""Collects benchmark figures and prints them with their goals and baselines."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    goal: str | None = None
    met: bool | None = None
    baseline_name: str | None = None
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.value == 0:
            return None
        return self.baseline / self.value


class Report:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.figures: list[Figure] = []

    def figure(
        self, name: str, value: float, unit: str, *, goal: str | None = None,
        met: bool | None = None, baseline_name: str | None = None, baseline: float | None = None,
    ) -> Figure:
        """Records one figure. `met` says whether `goal` holds; `baseline` is the same
        quantity measured in this run the other way (ratio = baseline / value)."""
        figure = Figure(name, value, unit, goal, met, baseline_name, baseline)
        self.figures.append(figure)
        self.console.print(f"  {name}: [bold]{value:,.2f}[/] {unit}")
        return figure

    def all_met(self) -> bool:
        return all(f.met is not False for f in self.figures)

    def print_table(self) -> None:
        table = Table(title="tether benchmarks")
        # The ratio is the baseline's value over this one: above 1, tether is that many
        # times faster or smaller than the baseline; below 1, slower or larger.
        for column in ("figure", "value", "goal", "baseline (same run)", "baseline ÷ value", "met"):
            table.add_column(column, justify="right" if column in ("value", "baseline ÷ value") else "left")
        for f in self.figures:
            baseline = (f"{f.baseline_name}: {f.baseline:,.2f} {f.unit}"
                        if f.baseline is not None else "—")
            ratio = f"{f.ratio:,.1f}×" if f.ratio is not None else "—"  # noqa: RUF001 (a ratio: 13.6 times)
            met = {True: "[green]yes[/]", False: "[red]no[/]", None: "—"}[f.met]
            table.add_row(f.name, f"{f.value:,.2f} {f.unit}", f.goal or "—", baseline, ratio, met)
        self.console.print(table)
