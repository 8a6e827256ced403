"""`python -m bench [NAME ...]`: runs every `bench/bench_*.py` (or the named ones).

Each module defines `async def run(report: Report) -> None` and records figures with
`report.figure(...)`. The table at the end shows each figure, its goal, its baseline and
the ratio, and the exit code says whether every goal was met: each one missed is named on
its own line at the end, with its value, its goal and its baseline.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys

from rich.console import Console

import bench
from bench.report import Report


async def main(names: list[str]) -> int:
    console = Console()
    report = Report(console)
    modules = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    chosen = [m for m in modules if not names or m.removeprefix("bench_") in names]
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        console.rule(f"[bold]{name.removeprefix('bench_')}")
        await module.run(report)
    report.print_table()
    for line in report.missed():
        console.print(line, style="red", markup=False, highlight=False)
    return 0 if report.all_met() else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
