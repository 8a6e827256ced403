"""What the run's updates accept: validators refuse a bad request before it reaches history."""

from __future__ import annotations

from temporalio import workflow
from tether.contracts.digests import given_digest
from tether.contracts.names import NEVER_STARTED
from tether.workflows import visibility
from tether.workflows.state import ApprovalWait, RunState

MAX_MESSAGE_CHARS = 32_000


def require_running(state: RunState | None) -> None:
    if state is None:
        raise ValueError(NEVER_STARTED)
    if state.phase in visibility.FINAL_PHASES:
        raise ValueError(f"the run has already ended ({state.phase})")


def check_approval(approvals: dict[str, ApprovalWait], call_id: str, approved: bool,
                   reason: str | None, digest: str | None) -> None:
    if call_id not in approvals:
        waiting = ", ".join(approvals) or "none"
        raise ValueError(f"no call {call_id!r} is waiting for approval (waiting: {waiting})")
    # A JSON null gets past the SDK's decoding as None, whatever the parameter's type.
    if not isinstance(approved, bool):
        raise ValueError(f"approved must be true or false, got {approved!r}")
    if reason is not None:
        check_text("the reason", reason)
    request = approvals[call_id].request
    if digest is not None:
        check_digest(call_id, request.arguments_digest, digest)
    elif approved and request.capped and request.arguments_digest is not None:
        # Nobody has seen such a call whole but through the store, which gives the digest:
        # approved without it, the unseen middle would run.
        raise ValueError(
            f"call {call_id}'s arguments are cut in the middle in the run's history, so an "
            f"approval must name their digest: read them whole with `tether status "
            f"{workflow.info().workflow_id}` and approve with the --digest it prints")


def check_text(what: str, value: object) -> None:
    """An update's text argument: a string (a JSON null decodes as None), and no longer than a
    message, since it reaches the model's next input or the run's result, both in history."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {'null' if value is None else type(value).__name__}")
    if len(value) > MAX_MESSAGE_CHARS:
        raise ValueError(f"{what} has {len(value)} characters; the limit is {MAX_MESSAGE_CHARS}")


def check_digest(call_id: str, waiting: str | None, given: object) -> None:
    """An approval's digest must name the arguments that would run. The refusal shows only the
    start of the right one: enough to recognise, not to approve unread."""
    if not isinstance(given, str):
        raise ValueError(f"the digest must be text, got {type(given).__name__}")
    digest = given_digest(given)
    read_it = f"read it again with `tether status {workflow.info().workflow_id}`"
    if waiting is None:
        raise ValueError(f"call {call_id} was asked for before tether recorded digests, so none "
                         f"can be checked: {read_it} and approve it without a digest")
    if digest != waiting:
        raise ValueError(f"call {call_id} would run arguments with digest {waiting[:19]}…, not "
                         f"{digest[:19]}…: what was read is not what would run; {read_it} and "
                         "approve with the digest it prints")
