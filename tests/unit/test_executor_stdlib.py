"""The executor runs inside sandbox images, on whatever python3 they have and nothing else:
it may import the standard library only (ruff and mypy check it like the rest of tether)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tether.sandbox.image.executor as executor


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module the source imports, wherever the import stands."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_the_executor_imports_the_standard_library_only():
    imported = imported_modules(Path(executor.__file__).read_text())
    assert "json" in imported  # the walk sees its imports
    assert sorted(imported - set(sys.stdlib_module_names) - {"__future__"}) == []


def test_the_check_would_catch_a_third_party_import():
    imported = imported_modules("import json\nfrom docker import APIClient\ndef f():\n    import yaml\n")
    assert sorted(imported - set(sys.stdlib_module_names)) == ["docker", "yaml"]
