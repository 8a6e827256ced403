"""The executor runs inside sandbox images, on whatever python3 they have and nothing else:
each of its modules may import the standard library only, or the executor's own modules (ruff
and mypy check it like the rest of tether)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tether.sandbox.image.executor as executor

EXECUTOR_FILES = sorted(Path(executor.__file__).parent.glob("*.py"))
STANDARD = set(sys.stdlib_module_names) | {"__future__"}


def imported_modules(source: str) -> set[str]:
    """The top-level names of every module the source imports, wherever the import stands;
    a relative import (the executor's own modules) counts as none."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_every_file_of_the_executor_imports_the_standard_library_only():
    imported = {path.name: imported_modules(path.read_text()) for path in EXECUTOR_FILES}
    assert {"__main__.py", "serving.py", "workspace.py"} <= set(imported)  # the glob sees them all
    assert "json" in set().union(*imported.values())  # the walk sees their imports
    outside = {name: sorted(names - STANDARD) for name, names in imported.items() if names - STANDARD}
    assert outside == {}


def test_the_check_would_catch_a_third_party_import():
    imported = imported_modules("import json\nfrom docker import APIClient\ndef f():\n    import yaml\n")
    assert sorted(imported - set(sys.stdlib_module_names)) == ["docker", "yaml"]


def test_the_check_would_catch_an_absolute_import_of_tether():
    imported = imported_modules("from .output import CappedBuffer\nfrom tether.contracts import ToolResult\n")
    assert sorted(imported - set(sys.stdlib_module_names)) == ["tether"]
