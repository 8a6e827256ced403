"""The package stays readable by file names: no product module grows past 600 lines."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE_THE_PACKAGE = ("tests", "bench", "scripts", "docs", "examples", "deploy", "build", ".venv")
MAX_LINES = 600


def test_no_product_module_is_over_600_lines():
    too_long = {}
    package = [top for top in ROOT.iterdir() if top.name not in OUTSIDE_THE_PACKAGE]
    modules = [top for top in package if top.suffix == ".py"]
    modules += [path for top in package if top.is_dir() for path in top.rglob("*.py")]
    for path in modules:
        relative = path.relative_to(ROOT)
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            too_long[relative.as_posix()] = lines
    assert too_long == {}, f"split these by what they do: {too_long}"
