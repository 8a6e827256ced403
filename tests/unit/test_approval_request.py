"""What a person is shown of a call waiting for approval: in the `status` query and the Web
UI's details (workflows/), and read back whole by the client (approvals.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tether.approvals import read_one
from tether.contracts import Message, RunStatus, ToolCall, Usage
from tether.contracts.caps import cap_arguments
from tether.contracts.digests import arguments_digest
from tether.store import Conversations, LocalContentStore
from tether.workflows.budget import Spent, view
from tether.workflows.tool_runner import approval_request
from tether.workflows.visibility import details_markdown

WHOLE = {"command": ": " + "a" * 1100 + " ; echo PWNED ; : " + "b" * 1100}
DIGEST = arguments_digest(WHOLE)
REASON = "I will tidy the workspace."


def asked_for(arguments: dict, digest: str | None, text: str | None = REASON):
    """The request as the workflow makes it, from history's capped copy of the call."""
    call = ToolCall(id="c1", name="shell", arguments=cap_arguments(arguments))
    return approval_request("1-0", call, digest, text, "ref")


def details(pending) -> str:
    from tether.contracts import Budget

    status = RunStatus(state="awaiting_approval", step=1, usage=Usage(), model="scripted",
                       budget=view(Budget(), Spent(steps=1, usage=Usage(), seconds=1)),
                       pending_approvals=[pending])
    now = datetime.now(UTC)
    return details_markdown(status, "run-x", now, now)


def test_a_call_history_holds_cut_is_marked_cut_and_named_by_its_whole_arguments_digest():
    pending = asked_for(WHOLE, DIGEST)
    assert pending.capped and pending.arguments_digest == DIGEST
    assert "PWNED" not in pending.arguments["command"]
    assert (pending.text, pending.assistant_ref) == (REASON, "ref")


def test_a_long_reason_is_capped_and_named_by_its_digest():
    pending = asked_for({"command": "ls"}, arguments_digest({"command": "ls"}), text="x" * 5000)
    assert pending.text is not None and len(pending.text) < 2100
    assert pending.text_digest is not None and not pending.capped


def test_the_web_ui_offers_no_approval_of_a_cut_call_only_its_digest_and_the_command_showing_it_whole():
    shown = details(asked_for(WHOLE, DIGEST))
    assert f"digest: `{DIGEST}`" in shown
    assert "`tether status run-x`" in shown
    assert "--digest" not in shown
    assert f"the model: ` {REASON} `" in shown


def test_the_web_ui_offers_a_whole_call_for_approval_by_its_digest():
    digest = arguments_digest({"command": "ls"})
    shown = details(asked_for({"command": "ls"}, digest))
    assert f"`tether approve run-x 1-0 --digest {digest}`" in shown


def test_a_call_history_holds_whole_gets_its_digest_in_the_workflow_when_the_activity_gave_none():
    from tether.workflows.tool_runner import Asked

    call = ToolCall(name="shell", arguments={"command": "ls"})
    assert Asked(text=None, digests=[]).digest(0, call) == arguments_digest({"command": "ls"})
    cut = ToolCall(name="shell", arguments=cap_arguments(WHOLE))
    assert Asked(text=None, digests=[]).digest(0, cut) is None


def stored(tmp_path: Path, arguments: dict) -> tuple[Conversations, str]:
    conversations = Conversations(LocalContentStore(tmp_path))
    ref = conversations.append(None, [Message(
        role="assistant", content=REASON, tool_calls=[ToolCall(id="c1", name="shell", arguments=arguments)])])
    assert ref is not None
    return conversations, ref


def test_the_client_reads_a_cut_call_whole_from_the_store(tmp_path: Path):
    conversations, ref = stored(tmp_path, WHOLE)
    pending = asked_for(WHOLE, DIGEST).model_copy(update={"assistant_ref": ref})
    call = read_one(pending, conversations)
    assert call.whole and call.problem is None
    assert (call.arguments, call.text) == (WHOLE, REASON)


def test_the_client_never_passes_off_a_stored_call_that_does_not_match_the_digest_as_whole(tmp_path: Path):
    conversations, ref = stored(tmp_path, {"command": "echo something else"})
    pending = asked_for(WHOLE, DIGEST).model_copy(update={"assistant_ref": ref})
    call = read_one(pending, conversations)
    assert not call.whole
    assert call.problem is not None and "do not approve" in call.problem


def test_the_client_says_when_it_cannot_read_a_cut_call_whole(tmp_path: Path):
    conversations = Conversations(LocalContentStore(tmp_path))
    pending = asked_for(WHOLE, DIGEST).model_copy(update={"assistant_ref": "0" * 64})
    call = read_one(pending, conversations, where="file:///nowhere")
    assert not call.whole and call.arguments == pending.arguments
    assert call.problem is not None and "file:///nowhere" in call.problem


def test_the_client_finds_no_call_for_an_id_it_cannot_place_and_says_so(tmp_path: Path):
    conversations, ref = stored(tmp_path, WHOLE)
    pending = asked_for(WHOLE, DIGEST).model_copy(update={"assistant_ref": ref, "call_id": "1-x"})
    call = read_one(pending, conversations)
    assert not call.whole
    assert call.problem is not None and "no call 1-x" in call.problem
