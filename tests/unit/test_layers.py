"""Every top-level module of the product has its place in the import-linter layers that
`make lint` checks, so a new module can't sit outside the architecture unnoticed."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_THE_PRODUCT = {"tests", "bench", "scripts", "examples", "deploy", "docs", "build"}


def product_modules() -> set[str]:
    """The package's top-level modules: files and packages at the repository's root."""
    names = {path.stem for path in ROOT.glob("*.py") if path.stem != "__init__"}
    names |= {path.parent.name for path in ROOT.glob("*/__init__.py")}
    return names - NOT_THE_PRODUCT


def layered_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [layers] = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return {name.strip().removeprefix("tether.") for layer in layers["layers"] for name in layer.split("|")}


def test_every_top_level_module_is_in_the_layers():
    modules = product_modules()
    assert {"cli", "client", "workflows", "sandbox"} <= modules  # the walk sees the package
    assert sorted(modules - layered_modules()) == []
