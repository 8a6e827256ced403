"""The run's sandbox from the workflow's side: one that can't be made fails the run saying
why; one that disappears mid-run is replaced, and the run says so."""

from __future__ import annotations

import pytest
from temporalio.client import Client, WorkflowFailureError
from tether import client as tether

from tests.helpers import sandboxes, sandboxes_of, wait_for
from tests.scripts import scripted_run, turn
from tests.workflows.histories import activities, summaries


async def test_a_sandbox_that_cannot_be_made_fails_the_run_naming_the_cause(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("no image", turn(shell="echo hi"), turn("never"),
                     sandbox={"image": "tether-no-such-image:latest"}),
        task_queue=worker)
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert (cause.type, cause.non_retryable) == ("SandboxUnavailable", True)
    assert cause.message.startswith("the run's sandbox could not be created: ")
    assert "sandbox image 'tether-no-such-image:latest' is not on this engine" in cause.message
    status = await tether.get_status(temporal_client, handle.id)
    assert status.state == "failed" and cause.message in status.last_error
    # Permanent: failed at once, not retried.
    acquire = next(r for r in await activities(temporal_client, handle) if r.type == "acquire_sandbox")
    assert (acquire.attempt, acquire.outcome) == (1, "failed")


async def test_a_run_whose_sandbox_disappears_goes_on_in_a_new_one_and_says_so(
    temporal_client: Client, worker: str
):
    handle = await tether.start_run(
        temporal_client,
        scripted_run("lose it",
                     turn(shell="echo before > note"),
                     {**turn(shell="cat note 2>&1; echo after"), "delay_seconds": 3},
                     turn("{{last_output}}")),
        task_queue=worker)

    async def thinking_at_step_2() -> bool:
        status = await tether.get_status(temporal_client, handle.id)
        return status.step == 2 and status.state == "thinking"

    await wait_for(thinking_at_step_2, what="step 2's model call")
    first = sandboxes_of(handle.id)[0].id
    sandboxes().remove(first)  # as an engine reset or an operator would
    result = await handle.result()

    assert result.status == "completed"
    # A fresh sandbox: the first one's file is not there, and the call ran.
    assert "No such file" in result.output and result.output.endswith("after")
    status = await tether.get_status(temporal_client, handle.id)
    assert "lost" in status.last_error and "continuing in a new sandbox" in status.last_error
    runs = await activities(temporal_client, handle)
    assert summaries(runs).count("acquire sandbox") == 2
    shells = [r for r in runs if r.summary == "step 2 · shell"]
    # Offered to the workflow's worker first, whose local attempt fails on the removed
    # container and hands the call on; the host queue's attempt finds the sandbox gone, and
    # the call runs again in the new one, on the workflow's worker.
    assert [(r.type, r.outcome) for r in shells] == [("tool_call", "failed"),
                                                     ("tool_call_here", "completed")]
    assert shells[0].input["container_id"] == first
    assert sandboxes_of(handle.id) == []
