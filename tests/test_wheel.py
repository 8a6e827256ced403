"""tether installs as one package, `tether`, beside an application laid out like tether itself
(its own workflows/, activities/, settings.py, client.py), and neither shadows the other."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and egg-info next to the sources.
    source = tmp_path_factory.mktemp("source") / "tether"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", ".tether", "build", "*.egg-info", "__pycache__", ".*_cache"))
    # No build isolation: the build uses this environment's setuptools, and needs no index.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(out), str(source)],
                   check=True, capture_output=True)
    [built] = out.glob("tether-*.whl")
    return built


def test_the_wheel_holds_only_the_tether_package(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"tether", "-".join(wheel.name.split("-")[:2]) + ".dist-info"}
    assert "tether/workflows/agent.py" in names
    assert "tether/contracts/run.py" in names
    assert "tether/sandbox/image/Dockerfile" in names
    assert "tether/sandbox/image/executor/__main__.py" in names  # what build.sh copies in
    assert not [n for n in names if n.startswith(("tether/tests/", "tether/bench/", "tether/.venv"))]


def test_the_wheel_holds_the_test_kit_for_users(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    assert "tether/testing.py" in names
    assert "tether/_testing/environment.py" in names


def test_the_wheel_holds_the_tether_command_whole(wheel: Path):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert {"tether/cli/__init__.py", "tether/cli/__main__.py", "tether/cli/runs.py"} <= names
    [entry_points] = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    assert "tether = tether.cli:main" in archive.read(entry_points).decode()


def test_an_application_with_its_own_workflows_and_settings_imports_beside_tether(
    wheel: Path, tmp_path: Path
):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # tether's dependencies come from this environment (no index is needed); tether itself
    # only from the wheel: the editable install's finder is not carried over.
    [venv_site] = (venv / "lib").glob("python3.*/site-packages")
    (venv_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    app = tmp_path / "app"
    for package in ("workflows", "activities"):
        (app / package).mkdir(parents=True)
        (app / package / "__init__.py").write_text(f"MINE = 'app {package}'\n")
    for module in ("settings", "client"):
        (app / f"{module}.py").write_text(f"MINE = 'app {module}'\n")
    check = textwrap.dedent("""
        import activities, client, settings, workflows
        import tether
        from tether.workflows.agent import AgentRun
        from tether import TetherPlugin, AgentRunInput, connect, start_run, get_run, RunStatus
        assert workflows.MINE == "app workflows" and activities.MINE == "app activities"
        assert settings.MINE == "app settings" and client.MINE == "app client"
        assert "site-packages" in tether.__file__, tether.__file__
        assert AgentRun.__module__ == "tether.workflows.agent"
        print(AgentRunInput(task="hi").model.label)
    """)
    done = subprocess.run([str(python), "-c", check], cwd=app, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "openai:gpt-4o-mini"
