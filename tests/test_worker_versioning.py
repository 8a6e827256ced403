"""Safe deploys with Worker Versioning: a run finishes on the version it started on, while new
runs go to the version made current, through docs/many-hosts.md's `temporal worker deployment`
commands. Two real worker processes (v1 and v2) on one queue, the suite's dev server."""

from __future__ import annotations

import shlex
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from tether import client as tether
from tether.contracts import names
from tether.settings import TetherSettings

from tests.helpers import run_command, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
TEMPORAL = str(Path(sys.executable).parent / "temporal")


async def make_current(address: str, deployment: str, build_id: str) -> None:
    """The rollout step of docs/many-hosts.md; retried while the version's first poll is on its way."""

    async def done() -> bool:
        code, _, _ = await run_command(shlex.join([
            TEMPORAL, "worker", "deployment", "set-current-version", "--address", address,
            "--deployment-name", deployment, "--build-id", build_id, "--yes"]))
        return code == 0

    await wait_for(done, timeout=60, every=1, what=f"{deployment}.{build_id} to become current")


async def build_ids_of(client: Client, workflow_id: str) -> set[str]:
    """The build ids of the workers that completed the run's workflow tasks."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {event.workflow_task_completed_event_attributes.deployment_version.build_id
            for event in history.events if event.HasField("workflow_task_completed_event_attributes")}


async def test_a_run_stays_on_its_version_while_new_runs_take_the_current_one(
    temporal_client: Client, temporal_address: str, tmp_path: Path
):
    deployment = f"tether-{uuid.uuid4().hex[:6]}"
    queue = f"versioned-{uuid.uuid4().hex[:6]}"

    def version(build_id: str) -> WorkerProcess:
        return WorkerProcess(temporal_client, task_queue=queue, worker_id=f"{queue}-{build_id}",
                             log_file=tmp_path / f"{build_id}.log",
                             env={"TETHER_DEPLOYMENT_NAME": deployment, "TETHER_BUILD_ID": build_id})

    v1, v2 = version("v1"), version("v2")
    try:
        await v1.start()
        await make_current(temporal_address, deployment, "v1")
        old = await tether.start_run(temporal_client, scripted_run(
            "started on v1", turn(shell="echo on-v1"), turn("{{last_output}}"),
            approval={"tools": ["shell"]}), task_queue=queue)

        async def waiting() -> bool:
            return bool((await tether.get_status(temporal_client, old.id)).pending_approvals)

        await wait_for(waiting, timeout=60, what="the v1 run to wait for approval")

        await v2.start()
        await make_current(temporal_address, deployment, "v2")
        new = await tether.start_run(temporal_client, scripted_run(
            "started on v2", turn(shell="echo on-v2"), turn("{{last_output}}")), task_queue=queue)
        assert (await new.result()).output == "on-v2"
        assert await build_ids_of(temporal_client, new.id) == {"v2"}

        # v2 is current now, but the run that started on v1 is pinned there, and finishes there.
        await old.execute_update(names.UPDATE_APPROVE, args=["1-0", True])
        assert (await old.result()).output == "on-v1"
        assert await build_ids_of(temporal_client, old.id) == {"v1"}
        info = (await old.describe()).raw_description.workflow_execution_info.versioning_info
        assert info.behavior == VersioningBehavior.PINNED.value
        assert info.deployment_version.build_id == "v1"
    finally:
        await v1.stop()
        await v2.stop()


def test_half_a_version_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_DEPLOYMENT_NAME", "tether")
    monkeypatch.delenv("TETHER_BUILD_ID", raising=False)
    with pytest.raises(ValueError, match="TETHER_BUILD_ID"):
        TetherSettings()
