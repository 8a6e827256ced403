"""The run's artifacts: the files its `artifacts` globs match, taken from the sandbox into
the store once, before the sandbox is released."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from tether.contracts import AgentRunInput
from tether.contracts.activities import COLLECT_ARTIFACTS
from tether.contracts.files import CollectInput, RunArtifacts
from tether.workflows.failures import root_message
from tether.workflows.options import ActivityOptions
from tether.workflows.sandbox_lease import SandboxLease
from tether.workflows.state import RunState


async def collect_artifacts(state: RunState, run: AgentRunInput, lease: SandboxLease,
                            options: ActivityOptions) -> RunArtifacts:
    """A run that never had a sandbox has none; one whose collection fails says why in its
    `last_error` and ends as it would have."""
    # Only a run that asks for artifacts issues this activity. The field is newer than
    # every recorded history (an older worker refuses an input that has it), so those
    # replay without the command and need no `workflow.patched` marker.
    if not run.artifacts or state.artifacts is not None:
        return state.artifacts or RunArtifacts()
    state.artifacts = RunArtifacts()
    sandbox = await lease.settle()
    try:
        if sandbox is None and state.sandbox_released:
            # Released while idle: its workspace is in its snapshot, restored to collect from.
            sandbox = await lease.get()
        if sandbox is None:
            return state.artifacts
        state.artifacts = await workflow.execute_activity(
            COLLECT_ARTIFACTS,
            CollectInput(workflow_id=workflow.info().workflow_id, container_id=sandbox.container_id,
                         started_at=sandbox.started_at, globs=run.artifacts,
                         max_total_bytes=run.sandbox.disk_mb << 20),
            result_type=RunArtifacts,
            task_queue=sandbox.task_queue,
            start_to_close_timeout=options.collect_timeout,
            schedule_to_start_timeout=options.host_wait(sandbox.host_wait_seconds),
            retry_policy=options.collect_retry,
            summary="collect artifacts",
        )
    except (ActivityError, ApplicationError) as error:
        state.last_error = f"artifacts could not be collected: {root_message(error)}"
    return state.artifacts
