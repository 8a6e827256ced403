"""The replay gate: every committed history of every released version replays against today's
workflow code, so an upgraded worker can resume any run an older one started.

From here on, a change to workflow code that running workflows would see (the commands a
step issues, their order, timers, conditions) must go behind `workflow.patched` or Worker
Versioning; an unguarded one fails here. Each version's histories are recorded, once, by
`python scripts/record_histories.py` into tests/workflows/histories/<version>-<path>.json,
and a version bump without them fails `test_the_current_version_has_recorded_histories`.

Pure replay: no server, no Docker.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from tether.contracts import AgentRunResult, names
from tether.workflows.agent import AgentRun

ROOT = Path(__file__).resolve().parents[2]
HISTORIES = Path(__file__).parent / "histories"
FILE_NAME = re.compile(r"^(?P<version>.+?)-(?P<path>[a-z_]+)(?:-(?P<execution>\d+))?\.json$")


def _recorder() -> ModuleType:
    """scripts/record_histories.py, for the paths it records and how it names their runs."""
    script = ROOT / "scripts" / "record_histories.py"
    spec = importlib.util.spec_from_file_location("record_histories", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


recorder = _recorder()


def current_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def history_files() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def load(file: Path) -> WorkflowHistory:
    match = FILE_NAME.match(file.name)
    assert match, f"{file.name} is not named <version>-<path>[-<execution>].json"
    return WorkflowHistory.from_json(recorder.workflow_id(match["path"]), file.read_text())


def replayer(workflow_class: type) -> Replayer:
    return Replayer(workflows=[workflow_class], data_converter=pydantic_data_converter)


@pytest.mark.parametrize("file", history_files(), ids=lambda file: file.name)
async def test_a_recorded_history_replays_against_todays_workflow_code(file: Path):
    result = await replayer(AgentRun).replay_workflow(load(file))  # raises on any failure
    assert result.replay_failure is None


def test_the_current_version_has_recorded_histories():
    version = current_version()
    recorded = {m["path"] for f in history_files() if (m := FILE_NAME.match(f.name))
                and m["version"] == version}
    missing = [path for path in recorder.PATHS if path not in recorded]
    assert not missing, (
        f"no history of {', '.join(missing)} for version {version} in {HISTORIES.relative_to(ROOT)}: "
        "run `python scripts/record_histories.py` and commit what it writes")


# --- the gate is live -----------------------------------------------------------------
# A plausible refactor that running workflows would see: take the sandbox before the model
# call rather than at the first tool call. It changes the order of the commands a step
# issues, so the recorded `completed` history (model_call, then acquire_sandbox) must fail.

@workflow.defn(name=names.AGENT_RUN, sandboxed=False)
class SameOrder(AgentRun):
    """Today's AgentRun under a subclass: the control, which must replay."""

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: dict[str, Any] | None = None) -> AgentRunResult:
        return await super().run(raw, carried)


@workflow.defn(name=names.AGENT_RUN, sandboxed=False)
class SandboxFirst(AgentRun):
    """Acquires the run's sandbox at the start of each step that may call tools."""

    @workflow.run
    async def run(self, raw: dict[str, Any], carried: dict[str, Any] | None = None) -> AgentRunResult:
        return await super().run(raw, carried)

    async def _step(self, *, final: bool = False) -> None:
        if not final and self._input.tools:
            await self._lease.get()
        await super()._step(final=final)


def completed_history() -> WorkflowHistory:
    return load(HISTORIES / f"{current_version()}-completed.json")


async def test_the_gate_passes_a_subclass_that_keeps_the_order():
    await replayer(SameOrder).replay_workflow(completed_history())


async def test_the_gate_fails_a_workflow_that_issues_its_commands_in_another_order():
    with pytest.raises(workflow.NondeterminismError) as raised:
        await replayer(SandboxFirst).replay_workflow(completed_history())
    # The core's message names both sides: what the history holds and what the code did.
    message = str(raised.value)
    assert "model_call" in message and "acquire_sandbox" in message, message
