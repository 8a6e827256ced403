"""`sandbox/image/build.sh` rebuilds the sandbox image when what it copies in changes: the
Dockerfile and every file of the executor count, a bytecode cache the host left does not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

IMAGE = Path(__file__).resolve().parents[2] / "sandbox" / "image"


def digest(folder: Path) -> str:
    """What build.sh would label the image with; it builds nothing and needs no engine."""
    done = subprocess.run(["bash", str(folder / "build.sh"), "--digest"],
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    copy = tmp_path / "image"
    shutil.copytree(IMAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_digest_is_the_same_for_the_same_files(image: Path):
    assert len(digest(image)) == 16
    assert digest(image) == digest(IMAGE)


def test_a_change_to_any_module_of_the_executor_changes_the_digest(image: Path):
    before = digest(image)
    with (image / "executor" / "limits.py").open("a") as module:
        module.write("# changed\n")
    assert digest(image) != before


def test_a_new_module_of_the_executor_changes_the_digest(image: Path):
    before = digest(image)
    (image / "executor" / "new_part.py").write_text("")
    assert digest(image) != before


def test_a_bytecode_cache_leaves_the_digest_alone(image: Path):
    before = digest(image)
    (image / "executor" / "__pycache__").mkdir()
    (image / "executor" / "__pycache__" / "limits.cpython-311.pyc").write_bytes(b"\0" * 16)
    assert digest(image) == before
