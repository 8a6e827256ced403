"""What a person approves: each call a run waits on, whole, read back from the content store
and checked against the digest the run will hold an approval to. Re-exported by `tether.client`.

History holds a call's long arguments cut in the middle (it holds each thing once: the whole
call is in the stored assistant message), and a query cannot read the store, since workflow
code does no I/O. So the client reads them, opening the store as the workers do
(TETHER_STORE_URL, sealed with TETHER_ENCRYPTION_KEYS), and says so plainly when it cannot:
a call is never passed off as whole when it is not.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from tether.contracts import PendingApproval, RunStatus
from tether.contracts.digests import arguments_digest, text_digest
from tether.store import Conversations


class WaitingCall(BaseModel):
    """A waiting call as a person should read it before deciding."""

    pending: PendingApproval
    """As the run's `status` query gives it: arguments and text capped."""
    arguments: dict[str, Any]
    """Whole when `whole`; otherwise the capped ones of `pending`."""
    text: str | None
    """The model's text of the step that asked for the call: whole when `whole`."""
    whole: bool
    """Whether `arguments` and `text` are exactly what the run holds: read whole and matched
    to the run's digests (or held whole by the run itself)."""
    problem: str | None = None
    """Why they are not whole, and what to do."""


def read_waiting(status: RunStatus, conversations: Conversations | None, *,
                 where: str = "the content store") -> list[WaitingCall]:
    """Every call `status` shows waiting, read whole where the run holds it cut. With no store
    (`conversations` None) a cut call says so."""
    return [read_one(pending, conversations, where=where) for pending in status.pending_approvals]


def read_one(pending: PendingApproval, conversations: Conversations | None, *,
             where: str = "the content store") -> WaitingCall:
    def partial(problem: str) -> WaitingCall:
        return WaitingCall(pending=pending, arguments=pending.arguments, text=pending.text,
                           whole=False, problem=problem)

    if not pending.capped and pending.text_digest is None:
        if pending.arguments_digest not in (None, arguments_digest(pending.arguments)):
            return partial("the run's arguments do not match its own digest: do not approve")
        return WaitingCall(pending=pending, arguments=pending.arguments, text=pending.text,
                           whole=True)
    if pending.assistant_ref is None or conversations is None:
        return partial(f"cut in the middle, and not read whole from {where}")
    try:
        message = conversations.message_at(pending.assistant_ref)
    except Exception as error:  # any backend's, or a key that can't open it: say which
        return partial(f"cut in the middle; reading it whole from {where} failed: {error} "
                       "(set TETHER_STORE_URL and TETHER_ENCRYPTION_KEYS as the workers have them)")
    position = pending.call_id.rpartition("-")[2]  # ids are `<step>-<index>`
    index = int(position) if position.isdigit() else len(message.tool_calls)
    calls = message.tool_calls
    if index >= len(calls) or calls[index].name != pending.tool:
        return partial(f"the stored message {pending.assistant_ref[:12]} has no call {pending.call_id}"
                       f" to {pending.tool}: do not approve")
    arguments = calls[index].arguments
    # The store checks each node against its name, so with no digest to match (a call asked
    # for before they were recorded) the node the run names is still the one that runs.
    if pending.arguments_digest not in (None, arguments_digest(arguments)):
        return partial("the stored arguments do not match the digest the run waits on: do not "
                       "approve")
    if pending.text_digest is not None and (
            message.content is None or text_digest(message.content) != pending.text_digest):
        return partial("the stored text does not match the digest the run holds: do not approve")
    return WaitingCall(pending=pending, arguments=arguments, text=message.content, whole=True)
