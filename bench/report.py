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
        at_most: float | None = None,
    ) -> Figure:
        """Records one figure. `met` says whether `goal` holds; `baseline` is the same
        quantity measured in this run the other way (ratio = baseline / value). With
        `at_most`, the goal is the value at most that many times the baseline: a goal that
        moves with the machine and the server, as the baseline does."""
        if at_most is not None:
            assert baseline is not None, "a goal against the baseline needs the baseline"
            goal = f"≤ {at_most:g}x {baseline_name} (baseline ÷ value ≥ {1 / at_most:.2f})"
            met = value <= at_most * baseline
        figure = Figure(name, value, unit, goal, met, baseline_name, baseline)
        self.figures.append(figure)
        against = f" ({baseline_name}: {baseline:,.2f} {unit})" if baseline is not None else ""
        self.console.print(f"  {name}: [bold]{value:,.2f}[/] {unit}{against}", highlight=False)
        return figure

    def all_met(self) -> bool:
        return not self.missed()

    def missed(self) -> list[str]:
        """One line for each goal not met, naming the figure, its value, the goal and the
        baseline it was measured against."""
        return [
            f"goal missed: {f.name} is {f.value:,.2f} {f.unit}, the goal {f.goal}"
            + (f"; {f.baseline_name}: {f.baseline:,.2f} {f.unit}" if f.baseline is not None else "")
            for f in self.figures if f.met is False
        ]

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
