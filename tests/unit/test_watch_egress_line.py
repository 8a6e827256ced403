"""A tool call's line in `tether watch`: what the egress proxy refused it, and what it moved."""

from __future__ import annotations

from tether.cli.watch_view import result_summary
from tether.contracts import ToolResult
from tether.contracts.events import ToolCallFinished


def line(**result: object) -> str:
    event = ToolCallFinished(offset=1, step=1, call_id="1-0", tool="python",
                             result=ToolResult(exit_code=0, duration_ms=7, **result))
    return result_summary(event).plain


def test_a_call_without_egress_says_nothing_of_it() -> None:
    assert "egress" not in line(stdout="ok")


def test_a_call_lists_every_destination_it_was_refused() -> None:
    assert "· egress denied evil.example:80, evil.example:443 ·" in line(
        egress_denied=["evil.example:80", "evil.example:443"], stdout="403")


def test_the_bytes_a_call_moved_read_in_b_kib_or_mib() -> None:
    assert "· egress 812 B" in line(egress_bytes=812)
    assert "· egress 3.5 KiB" in line(egress_bytes=3584)
    assert "· egress 256.0 MiB" in line(egress_bytes=256 << 20)
