"""What a person approves is what runs: everything a run produced (tool arguments, outputs,
model text, error messages) is printed literally by every `tether` command, never read as
Rich markup, with terminal control and escape sequences shown as visible escapes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from temporalio.client import Client
from tether import client as tether
from tether.cli.render import clipped, literal, print_result

from tests.helpers import wait_for
from tests.scripts import scripted_run, turn

ROOT = Path(__file__).resolve().parent.parent

MARKUP = "[/] [bold]x[/bold] a[n] [red]not red[/red] [link=file:///tmp/evil]here[/link] :smile:"
CSI = "\x1b[31mred\x1b[0m \x1b[2J\x1b[1A"
OSC8 = "\x1b]8;;file:///tmp/evil\x1b\\click me\x1b]8;;\x1b\\"
OVERWRITE = "rm -rf /\rls -la   "
BACKSPACES = "rm -rf /x\x08\x08\x08\x08\x08\x08\x08\x08\x08ls"
BIDI = "echo \u202eftp.evil\u202c \u2066x\u2069 \u200b\ufeff"
NUL = "a\x00b\x07c\x7fd\x9be"


def printed(value: object, *, terminal: bool = False) -> str:
    """What a console prints for `literal(value)`: with `terminal`, with colours on, as a
    person's terminal would get it."""
    out = io.StringIO()
    console = Console(file=out, width=300, force_terminal=terminal,
                      color_system="truecolor" if terminal else None)
    console.print(literal(value), soft_wrap=True)
    return out.getvalue()


# ---- the function -------------------------------------------------------------------------


def test_markup_is_printed_as_written():
    assert printed(MARKUP) == MARKUP + "\n"
    assert printed("rm -rf /workspace/[a-z]*") == "rm -rf /workspace/[a-z]*\n"
    # Styled, on a colour terminal, the text still reads as written.
    assert "rm -rf /workspace/[a-z]*" in printed("rm -rf /workspace/[a-z]*", terminal=True)


def test_ansi_csi_sequences_are_shown_not_run():
    assert literal(CSI).plain == "\\x1b[31mred\\x1b[0m \\x1b[2J\\x1b[1A"
    assert "\x1b" not in printed(CSI)
    # On a colour terminal the only escapes are the console's own styling, never the run's.
    assert "\\x1b[2J" in printed(CSI, terminal=True)
    assert "\x1b[2J" not in printed(CSI, terminal=True)


def test_an_osc8_hyperlink_cannot_hide_its_target():
    shown = literal(OSC8).plain
    assert shown == "\\x1b]8;;file:///tmp/evil\\x1b\\click me\\x1b]8;;\\x1b\\"
    assert "file:///tmp/evil" in printed(OSC8, terminal=True)
    assert "\x1b]" not in printed(OSC8, terminal=True)


def test_carriage_returns_and_backspaces_cannot_overwrite_what_was_shown():
    assert literal(OVERWRITE).plain == "rm -rf /\\rls -la   "
    assert literal(BACKSPACES).plain == "rm -rf /x" + "\\b" * 9 + "ls"
    assert "\r" not in printed(OVERWRITE) and "\x08" not in printed(BACKSPACES)


def test_bidi_overrides_and_invisible_characters_are_shown():
    assert literal(BIDI).plain == "echo \\u202eftp.evil\\u202c \\u2066x\\u2069 \\u200b\\ufeff"
    assert literal("tag\U000e0041").plain == "tag\\U000e0041"
    assert literal("a\u2028b\u2029c").plain == "a\\u2028b\\u2029c"


def test_nul_and_other_c0_and_c1_controls_are_shown():
    assert literal(NUL).plain == "a\\x00b\\x07c\\x7fd\\x9be"


def test_newlines_tabs_and_ordinary_unicode_stay():
    text = "line 1\n\tline 2 — héllo 世界 😀 C:\\path\\x1b"
    assert literal(text).plain == text
    assert literal(42).plain == "42"


def test_clipped_says_how_much_it_cut():
    assert clipped("abcdef", 10).plain == "abcdef"
    assert clipped("abc\x1bdef", 4).plain == "abc\\x1b … (3 more characters)"


def test_print_result_prints_a_hostile_output_literally():
    hostile = f"{MARKUP} {CSI} {OVERWRITE} {BIDI}"
    result = SimpleNamespace(
        status="completed", stop_reason=f"final answer {MARKUP}", output=hostile, steps=2,
        usage=SimpleNamespace(cost_usd=0.0, input_tokens=1, output_tokens=2), cost_known=False,
        seconds=1.0, artifacts=[], skipped_artifacts=[])
    out = io.StringIO()
    print_result(Console(file=out, width=1000, color_system=None), result,
                 {"workflow_id": "w[/]", "ui": "http://ui/[b]", "show": "temporal [/]"})
    text = out.getvalue()
    assert literal(hostile).plain in text
    assert f"final answer {MARKUP}" in text
    assert "w[/]" in text and "http://ui/[b]" in text
    assert "(price unknown for some steps)" in text
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text


# ---- every command, against a live run ----------------------------------------------------


async def cli(temporal_address: str, worker: str, *args: str) -> tuple[int, str, str]:
    """Runs `tether ARGS` with stdout a pipe, as a script would: any escape sequence in the
    output then came from the run, never from the console's own styling."""
    env = {**os.environ, "TETHER_TASK_QUEUE": worker, "TEMPORAL_ADDRESS": temporal_address,
           "COLUMNS": "400"}
    env.pop("FORCE_COLOR", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, stdout.decode(), stderr.decode()


def no_raw_controls(text: str) -> None:
    for char in ("\x1b", "\r", "\x08", "\x00", "\x9b", "\u202e", "\u200b"):
        assert char not in text, f"{char!r} reached the terminal"


async def awaiting_approval(temporal_client: Client, workflow_id: str) -> list:
    async def waiting() -> bool:
        return bool((await tether.get_status(temporal_client, workflow_id)).pending_approvals)

    await wait_for(waiting, what="the call to wait for approval")
    return (await tether.get_status(temporal_client, workflow_id)).pending_approvals


async def test_status_shows_the_command_waiting_for_approval_exactly(
    temporal_client: Client, temporal_address: str, worker: str
):
    command = "rm -rf /workspace/[a-z]*"
    handle = await tether.start_run(
        temporal_client,
        scripted_run("approve", turn(shell=command), turn("{{last_output}}"),
                     approval={"tools": ["shell"]}),
        task_queue=worker)
    [pending] = await awaiting_approval(temporal_client, handle.id)

    code, out, err = await cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    assert f'shell {{"command": "{command}"}}' in out
    assert "/workspace/*" not in out

    code, out, err = await cli(temporal_address, worker, "approve", handle.id, pending.call_id)
    assert code == 0, err
    assert f"call {pending.call_id} (shell) approved" in out
    assert (await handle.result()).status == "completed"

    code, out, err = await cli(temporal_address, worker, "transcript", handle.id)
    assert code == 0, err
    assert f'shell {{"command": "{command}"}}' in out


async def test_status_and_transcript_print_hostile_run_text_literally(
    temporal_client: Client, temporal_address: str, worker: str
):
    said = f"model {MARKUP} code[n] {CSI}\rFORGED {BIDI}"
    # The shell makes the escapes: the tool's output holds real ESC, CR and BS bytes.
    command = ("printf 'out [/] [bold]y[/bold] a[n] \\033[32mgreen\\033[0m\\rOVER\\010X\\n'; "
               "printf 'err [/] \\033]8;;file:///tmp/evil\\033\\\\link\\033]8;;\\033\\\\\\n' >&2 "
               f"# arg {MARKUP} \x1b[31m \u202e")
    handle = await tether.start_run(
        temporal_client,
        scripted_run("hostile", turn(said, shell=command), turn(f"done {MARKUP} {OSC8}"),
                     approval={"tools": ["shell"]}),
        task_queue=worker)
    [pending] = await awaiting_approval(temporal_client, handle.id)

    code, out, err = await cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    no_raw_controls(out)
    assert "shell " + json.dumps({"command": command}) in out

    code, out, err = await cli(temporal_address, worker, "approve", handle.id, pending.call_id)
    assert code == 0, err
    result = await handle.result()
    assert result.status == "completed", result

    code, out, err = await cli(temporal_address, worker, "transcript", handle.id)
    assert code == 0, err
    no_raw_controls(out)
    assert literal(said).plain in out
    assert "shell " + json.dumps({"command": command})[:300] in out
    assert "out [/] [bold]y[/bold] a[n] \\x1b[32mgreen\\x1b[0m\\rOVER\\bX" in out
    assert "err [/] \\x1b]8;;file:///tmp/evil\\x1b\\link\\x1b]8;;\\x1b\\" in out
    assert literal(f"done {MARKUP} {OSC8}").plain in out

    code, out, err = await cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    no_raw_controls(out)
    assert "completed" in out


async def test_run_wait_prints_the_model_answer_literally(
    temporal_address: str, worker: str, tmp_path: Path
):
    answer = f"answer {MARKUP} {CSI} {OVERWRITE} {BIDI}"
    script = tmp_path / "hostile.json"
    script.write_text(json.dumps({"turns": [{"text": answer, "tool_calls": []}]}))
    code, out, err = await cli(temporal_address, worker, "run", "say it",
                               "--model", f"scripted:{script}", "--wait")
    assert code == 0, err
    no_raw_controls(out)
    assert literal(answer).plain in out


async def test_update_replies_and_refusals_print_literally(
    temporal_client: Client, temporal_address: str, worker: str
):
    handle = await tether.start_run(
        temporal_client, scripted_run("wait", turn(shell="sleep 30"), turn("done")),
        task_queue=worker)
    await wait_for(lambda: tether.get_status(temporal_client, handle.id), what="the run to start")

    code, out, err = await cli(temporal_address, worker, "approve", handle.id, "[/]no-such\x1b[2J")
    assert code == 2
    no_raw_controls(err)
    assert "approve refused" in err and "[/]no-such" in err

    code, out, err = await cli(temporal_address, worker, "message", handle.id,
                               f"person {MARKUP} {CSI}")
    assert code == 0, err
    assert "message queued" in out

    reason = f"stop {MARKUP} {CSI}\rhidden {BIDI}"
    code, out, err = await cli(temporal_address, worker, "cancel", handle.id, "--reason", reason)
    assert code == 0, err
    no_raw_controls(out)
    assert literal(reason).plain in out
    assert (await handle.result()).status == "cancelled"

    code, out, err = await cli(temporal_address, worker, "status", handle.id)
    assert code == 0, err
    no_raw_controls(out)


@pytest.mark.parametrize("args", [["status"], ["transcript"]])
async def test_a_run_that_does_not_exist_is_a_literal_error(
    temporal_address: str, worker: str, args: list[str]
):
    code, _, err = await cli(temporal_address, worker, *args, "no-such-run-[/]\x1b[2J")
    assert code != 0
    no_raw_controls(err)
