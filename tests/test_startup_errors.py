"""What a worker or a command refuses to start with says so in one line, naming the variable
or the entry to fix, and leaves with a non-zero code: never a traceback, never a worker that
connects and fails later. Each runs `tether` as a person would, from a directory of their own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import free_port

TETHER = str(Path(sys.executable).parent / "tether")


async def tether_in(directory: Path, *args: str, timeout: float = 30, **env: str) -> tuple[int | None, str]:
    """`tether ARGS` run in `directory`; the exit code (None: still running at `timeout`,
    then stopped) and what it wrote to stderr."""
    process = await asyncio.create_subprocess_exec(
        TETHER, *args, cwd=directory, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}", "COLUMNS": "200",
             "TETHER_TOOLS": "", **env})
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
        return process.returncode, stderr.decode()
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
        return None, stderr.decode()


def one_line(code: int | None, err: str, *needles: str) -> None:
    assert code not in (None, 0), f"exit code {code}: {err}"
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's directory with a package of tools: one documented, one not."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "tools.py").write_text(
        'def price(item: str) -> float:\n    """The price of an item."""\n    return 1.0\n')
    (tmp_path / "shop" / "undocumented.py").write_text(
        "def price(item: str) -> float:\n    return 1.0\n")
    (tmp_path / "shop" / "broken.py").write_text("import nowhere_to_be_found\n")
    return tmp_path


async def test_a_worker_serves_a_tools_module_of_its_working_directory(
    project: Path, temporal_address: str
):
    process = await asyncio.create_subprocess_exec(
        TETHER, "worker", cwd=project, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEMPORAL_ADDRESS": temporal_address, "TETHER_TOOLS": "shop.tools",
             "TETHER_ROLE": "workflows", "TETHER_TASK_QUEUE": f"cwd-{uuid.uuid4().hex[:8]}"})
    assert process.stderr is not None
    seen = []
    try:
        async with asyncio.timeout(60):
            while line := (await process.stderr.readline()).decode():
                seen.append(line)
                if " serving " in line:
                    break
    except TimeoutError:
        pass
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        await process.wait()
    assert any(" serving " in line for line in seen), "".join(seen)


@pytest.mark.parametrize(("entry", "needles"), [
    ("shop.broken", ["TETHER_TOOLS", "'shop.broken' can't be imported", "nowhere_to_be_found"]),
    ("shop.undocumented", ["TETHER_TOOLS", "shop.undocumented:price has no docstring"]),
    ("nowhere.tools", ["TETHER_TOOLS", "'nowhere.tools' can't be imported", "PYTHONPATH"]),
])
async def test_a_tools_entry_that_does_not_load_stops_the_worker_in_one_line(
    project: Path, entry: str, needles: list[str]
):
    code, err = await tether_in(project, "worker", TETHER_TOOLS=entry)
    one_line(code, err, *needles)


@pytest.mark.parametrize("command", [["worker"], ["list"], ["status", "some-run"]])
async def test_an_invalid_setting_is_one_line_naming_its_variable(tmp_path: Path, command: list[str]):
    code, err = await tether_in(tmp_path, *command, TETHER_POOL_SIZE="-1")
    one_line(code, err, "TETHER_POOL_SIZE=-1", "greater than or equal to 0")
    assert "pool_size" not in err


async def test_the_worker_that_tether_dev_starts_names_an_invalid_setting_in_one_line(tmp_path: Path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.worker", cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
             "TETHER_METRICS_BIND": "nowhere"})
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    one_line(process.returncode, stderr.decode(), "TETHER_METRICS_BIND=nowhere", "HOST:PORT")


async def test_an_otlp_protocol_tether_does_not_speak_stops_the_worker_in_one_line(tmp_path: Path):
    code, err = await tether_in(tmp_path, "worker", OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                                OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    one_line(code, err, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "http/protobuf")


async def test_tether_dev_whose_worker_cannot_start_says_why_and_exits_non_zero(
    tmp_path: Path, temporal_address: str
):
    code, err = await tether_in(tmp_path, "dev", TETHER_TOOLS="nowhere.tools",
                                TEMPORAL_ADDRESS=temporal_address)
    assert code not in (None, 0), err
    assert "Traceback" not in err
    assert "TETHER_TOOLS: tool module 'nowhere.tools' can't be imported" in err, err
