"""workflows/state.py: what a run keeps stays small however long it runs."""

from __future__ import annotations

from datetime import UTC, datetime

from tether.contracts import Budget, StepRecord, ToolCall, ToolResult
from tether.contracts.caps import TEXT_CAP as TRANSCRIPT_TEXT_CAP
from tether.contracts.caps import cap_record, cap_text
from tether.workflows.state import TRANSCRIPT_KEPT, RunState


def test_a_short_text_is_kept_whole():
    assert cap_text("hello") == "hello"
    assert cap_text(None) is None


def test_a_long_text_keeps_its_head_and_tail_and_says_how_much_was_cut():
    text = "a" * 5000 + "b" * 5000
    capped = cap_text(text)
    assert capped.startswith("a" * (TRANSCRIPT_TEXT_CAP // 2))
    assert capped.endswith("b" * (TRANSCRIPT_TEXT_CAP // 2))
    assert f"[... {10000 - TRANSCRIPT_TEXT_CAP} characters ...]" in capped


def test_a_step_record_caps_text_arguments_and_results():
    big = "x" * 50_000
    entry = StepRecord(
        step=1, model="scripted", text=big,
        tool_calls=[ToolCall(name="write_file", arguments={"path": "f", "content": big})],
        tool_results=[ToolResult(exit_code=0, stdout=big, stderr=big)],
    )
    capped = cap_record(entry)
    assert len(capped.model_dump_json()) < 6 * TRANSCRIPT_TEXT_CAP + 1000
    assert capped.tool_calls[0].arguments["path"] == "f"
    assert capped.tool_results[0].exit_code == 0


def test_the_transcript_keeps_only_the_most_recent_steps():
    state = RunState(started_at=datetime.now(UTC), budget=Budget())
    for step in range(1, TRANSCRIPT_KEPT + 11):
        state.record(StepRecord(step=step, model="scripted"))
    assert [s.step for s in state.transcript] == list(range(11, TRANSCRIPT_KEPT + 11))
