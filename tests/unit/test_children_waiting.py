"""A sub-agent's waiting calls in its parent's status and Web UI details (workflows/
delegation.py, workflows/visibility.py): whose each is, and the command that answers it."""

from __future__ import annotations

from datetime import UTC, datetime

from tether.contracts import Budget, PendingApproval, RunStatus
from tether.contracts.agents import ChildWaiting
from tether.workflows.delegation import heard_from_child, waiting_of
from tether.workflows.state import ApprovalWait, RunState
from tether.workflows.visibility import details_markdown, status_of

DIGEST = "sha256:" + "a" * 64


def test_a_run_tells_its_own_waiting_calls_then_its_descendants():
    state = RunState(started_at=datetime.now(UTC), budget=Budget())
    state.approvals["3-0"] = ApprovalWait(request=PendingApproval(
        call_id="3-0", tool="shell", arguments={}, arguments_digest=DIGEST))
    heard_from_child(state, "p.delegate-1-0", [{"workflow_id": "p.delegate-1-0.delegate-2-1",
                                               "call_id": "1-0", "tool": "python"}])
    assert [(w.workflow_id, w.call_id) for w in waiting_of("p.delegate-1-0", state)] == [
        ("p.delegate-1-0", "3-0"), ("p.delegate-1-0.delegate-2-1", "1-0")]
    heard_from_child(state, "p.delegate-1-0", [])
    assert state.children_waiting == {}


def test_the_parents_details_name_the_child_and_the_command_that_answers_it():
    from tether.contracts import AgentRunInput

    state = RunState(started_at=datetime.now(UTC), budget=Budget(), phase="running_tools")
    state.children_waiting["p.delegate-2-0"] = [
        ChildWaiting(workflow_id="p.delegate-2-0", call_id="2-0", tool="python", arguments_digest=DIGEST)]
    status: RunStatus = status_of(state, AgentRunInput(task="t"), 1.0)
    assert status.state == "awaiting_approval"
    now = datetime.now(UTC)
    details = details_markdown(status, "p", now, now)
    assert f"`tether approve p.delegate-2-0 2-0 --digest {DIGEST}`" in details
