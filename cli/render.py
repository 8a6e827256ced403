"""How the `tether` command's output reads on a terminal: results, tables, error lines.

Everything a run produced (tool arguments and outputs, model text, error messages, a reason a
person typed) reaches the terminal through `literal`: it is never read as Rich markup, and
terminal control and escape sequences in it are shown as visible escapes (`\\x1b`, `\\r`,
`\\u202e`) instead of acting on the terminal. What an operator reads, and approves, is what
the run holds: a model or a tool can neither hide text nor forge it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from tether.approvals import WaitingCall
from tether.cli.run_table import print_run_table
from tether.contracts import RunArtifacts, RunStatus, StepRecord
from tether.contracts.listing import RunListing
from tether.store.files import Downloaded

console = Console()
err = Console(stderr=True)

_KEPT = frozenset("\n\t")
"""Controls that lay text out without hiding any of it: kept as they are."""
_NAMED = {"\r": "\\r", "\x08": "\\b"}
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Controls (C0, DEL, C1), format characters (bidi overrides and isolates, zero-width
characters, soft hyphen, byte-order mark, tag characters), lone surrogates, and the line and
paragraph separators: each can move the cursor, recolour, hide, reorder or fake text."""


def _visible(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    return char not in _KEPT and unicodedata.category(char) in _UNSAFE_CATEGORIES


def literal(value: Any, style: str = "") -> Text:
    """Run-produced text, safe to print: a `Text` (never parsed as markup), with every
    terminal control, escape and invisible format character written out as a visible
    escape. Newlines and tabs stay. Non-strings are printed as `str(value)`."""
    text = value if isinstance(value, str) else str(value)
    if any(_unsafe(char) for char in text):
        text = "".join(_visible(char) if _unsafe(char) else char for char in text)
    return Text(text, style=style)


def clipped(value: Any, limit: int) -> Text:
    """`literal(value)`, cut to `limit` characters with a note saying how much was cut, so a
    shortened view never passes for the whole."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return literal(text)
    shown = literal(text[:limit])
    shown.append(f" … ({len(text) - limit} more characters)", style="dim")
    return shown


CODE_LIMIT = 4000
"""Characters of one code argument shown in a call's line before it is cut (with a note)."""


def _is_code(value: Any) -> bool:
    return isinstance(value, str) and "\n" in value.strip("\n")


def print_code(console: Console, arguments: dict[str, Any]) -> None:
    """Each multi-line string argument (python's `code`, shell's `command`, a file's
    `content`) as code: its lines indented under its name, as a person reads code; inside
    JSON it would be one line full of `\\n`."""
    for name, value in arguments.items():
        if _is_code(value):
            console.print(Text(f"  {name}:", "dim"))
            console.print(clipped("    " + value.strip("\n").replace("\n", "\n    "), CODE_LIMIT),
                          soft_wrap=True)


def print_call(console: Console, head: Text, arguments: dict[str, Any], limit: int) -> None:
    """A tool call: `head`, its one-line arguments as JSON (cut at `limit`), then its code."""
    inline = {name: value for name, value in arguments.items() if not _is_code(value)}
    line = head.copy()
    if inline or not arguments:
        line += Text(" ") + clipped(json.dumps(inline), limit)
    console.print(line, soft_wrap=True)
    print_code(console, arguments)


def print_result(console: Console, result: Any, links: dict[str, str]) -> None:
    colour = {"completed": "green", "budget_exhausted": "yellow"}.get(result.status, "red")
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    table.add_row("status", literal(result.status, f"bold {colour}"))
    table.add_row("stop reason", literal(result.stop_reason))
    table.add_row("output", literal(result.output, "bold") if result.output else Text("—", "dim"))
    table.add_row("steps", str(result.steps))
    u = result.usage
    cost = Text(f"${u.cost_usd:.4f}")
    if not result.cost_known:
        cost.append(" (price unknown for some steps)", style="yellow")
    table.add_row("usage", Text(f"{u.input_tokens} in · {u.output_tokens} out · ") + cost)
    table.add_row("seconds", f"{result.seconds:.2f}")
    if result.artifacts or result.skipped_artifacts:
        skipped = f", {len(result.skipped_artifacts)} skipped" if result.skipped_artifacts else ""
        table.add_row("artifacts", Text(f"{len(result.artifacts)} file(s){skipped} · ")
                      + literal(f"tether artifacts {links['workflow_id']}"))
    console.print(table)
    print_links(console, links)


def person_said(message: str) -> Text:
    """A person's message (`tether message`), where the model read it."""
    return Text("message from a person: ", "magenta") + literal(message)


def print_links(console: Console, links: dict[str, str]) -> None:
    """The run's id, Web UI link and history command, each on one line however narrow the
    terminal: a link broken across lines is no longer a link."""
    for label, key in (("workflow id", "workflow_id"), ("web UI", "ui"), ("history", "show")):
        console.print(Text(f"{label:<13}", "dim") + literal(links[key]), soft_wrap=True)


def print_error(message: str, hint: str | None = None) -> None:
    """`error: MESSAGE` and `→ HINT`, printed literally: they often carry what a run produced
    (a reason, a call id, a tool's error)."""
    err.print(Text("error: ", "bold red") + literal(message), soft_wrap=True)
    if hint:
        err.print(Text("→ ", "dim") + literal(hint, "dim"), soft_wrap=True)


def print_runs(runs: Sequence[RunListing], *, status: str | None, since: str | None) -> None:
    """`tether list`: one row a run, newest first, ids whole at any width (`cli/run_table`)."""
    print_run_table(console, runs, f"{len(runs)} run(s)" + (f" · {status}" if status else "")
                    + (f" · since {since}" if since else ""), literal)


def print_status(workflow_id: str, current: RunStatus, writing: str | None,
                 waiting: Sequence[WaitingCall]) -> None:
    """`tether status`: the budget as a table, each waiting call whole, the last error and
    what the model is writing now."""
    b = current.budget
    # A line of its own, not the table's title: a title wraps at the narrow table's width,
    # mid-id and mid-word.
    console.print(literal(f"{workflow_id} · {current.state} · step {current.step}", "bold"),
                  soft_wrap=True)
    table = Table()
    table.add_column("budget")
    table.add_column("used", justify="right")
    table.add_column("limit", justify="right")
    for name, used, limit in [("steps", b.steps, b.max_steps), ("tokens", b.tokens, b.max_tokens),
                              ("cost $", b.cost_usd, b.max_cost_usd),
                              ("seconds", b.seconds, b.max_seconds)]:
        table.add_row(name, f"{used:g}", "∞" if limit is None else f"{limit:g}")
    console.print(table)
    if current.sandbox == "released":
        console.print(Text("sandbox: ", "dim") + Text(
            "released while idle; the next tool call restores its workspace in a new one"), soft_wrap=True)
    for call in waiting:
        print_waiting(workflow_id, call)
    for child in current.children_waiting:
        console.print(Text("sub-agent ", "yellow") + literal(child.workflow_id)
                      + Text(" awaits approval of ", "yellow") + literal(child.call_id) + Text(": ")
                      + literal(child.tool), soft_wrap=True)
        console.print(Text("  approve: ", "yellow") + literal(child.approve_command, "bold")
                      + Text("   read it whole: ", "yellow") + literal(f"tether status {child.workflow_id}"),
                      soft_wrap=True)
    if current.last_error:
        console.print(Text("last error: ", "red") + literal(current.last_error), soft_wrap=True)
    if writing:
        console.print(literal(current.model, "cyan") + Text(" is writing: ", "cyan")
                      + literal("…" + writing[-500:]), soft_wrap=True)


def print_waiting(workflow_id: str, call: WaitingCall) -> None:
    """A call waiting for a person, whole: the model's reason, the arguments (code as code),
    and the command approving exactly them. One that could not be read whole says why and
    is not offered for approval."""
    p = call.pending
    console.print(Text("awaiting approval ", "yellow") + literal(p.call_id) + Text(": ")
                  + literal(p.tool) + Text(" ") + literal(json.dumps(call.arguments)), soft_wrap=True)
    if call.text:
        console.print(Text("  the model: ", "yellow") + literal(call.text), soft_wrap=True)
    print_code(console, call.arguments)
    if p.arguments_digest:
        console.print(Text("  digest: ", "yellow") + literal(p.arguments_digest), soft_wrap=True)
    deny = Text("  deny: ", "yellow") + literal(
        f'tether approve {workflow_id} {p.call_id} --deny --reason "..."')
    if not call.whole:
        console.print(Text("  not shown whole: ", "red") + literal(call.problem or ""), soft_wrap=True)
        console.print(deny, soft_wrap=True)
        return
    pinned = f" --digest {p.arguments_digest}" if p.arguments_digest else ""
    console.print(Text("  approve: ", "yellow") + literal(f"tether approve {workflow_id} {p.call_id}{pinned}",
                                                        "bold"), soft_wrap=True)
    console.print(deny, soft_wrap=True)


def print_transcript(steps: Sequence[StepRecord]) -> None:
    """`tether transcript`: each step's text, and each tool call with its result, clipped."""
    for step in steps:
        console.rule(literal(f"step {step.step} · {step.model}"
                             + (" · inherited" if step.inherited else "")
                             + (f" · {step.note}" if step.note else "")))
        for said in step.messages:
            console.print(person_said(said), soft_wrap=True)
        if step.text:
            console.print(literal(step.text), soft_wrap=True)
        for call, result in zip(step.tool_calls, step.tool_results, strict=False):
            colour = "green" if result.exit_code == 0 else "red"
            print_call(console, literal(call.name, "bold"), call.arguments, 300)
            status_line = Text(f"  exit {result.exit_code}", colour)
            if result.timed_out:
                status_line.append(" timed out", "yellow")
            if result.truncated:
                status_line.append(" truncated", "yellow")
            console.print(status_line)
            for stream in (result.stdout, result.stderr):
                if stream:
                    console.print(Text("  ") + clipped(stream.strip().replace("\n", "\n  "), 2000),
                                  soft_wrap=True)


def print_in_flight(workflow_id: str, step: StepRecord, status: RunStatus) -> None:
    """`tether transcript`'s last step while it is under way: what the model said and the
    calls it asked for, each running or waiting for a person."""
    console.rule(literal(f"step {step.step} · {step.model} · in flight"))
    for said in step.messages:
        console.print(person_said(said), soft_wrap=True)
    if step.text:
        console.print(literal(step.text), soft_wrap=True)
    if not step.tool_calls:
        console.print(Text("  the model is answering", "dim"))
    waiting = {pending.call_id for pending in status.pending_approvals}
    for index, call in enumerate(step.tool_calls):
        print_call(console, literal(call.name, "bold"), call.arguments, 300)
        if f"{step.step}-{index}" in waiting:
            console.print(Text("  awaiting approval: ", "yellow")
                          + literal(f"tether status {workflow_id}", "bold")
                          + Text(" shows it whole, with the command that answers it"), soft_wrap=True)
        else:
            console.print(Text("  not finished yet", "dim"))


def print_artifacts(workflow_id: str, found: RunArtifacts, downloaded: Downloaded | None,
                    directory: Path | None) -> None:
    """`tether artifacts`: what the run left, and with --download, what was written where."""
    table = Table(title=literal(f"{workflow_id} · {len(found.artifacts)} artifact(s)"))
    for column, justify in (("path", "left"), ("size", "right"), ("sha256", "left"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]  # rich's Literal
    for record in found.artifacts:
        table.add_row(literal(record.path), f"{record.size:,}", record.sha256[:12], "")
    for skipped in found.skipped:
        table.add_row(literal(skipped.path), "", "", literal(f"skipped: {skipped.reason}", "yellow"))
    console.print(table)
    if downloaded is not None:
        console.print(Text(f"wrote {len(downloaded.written)} file(s) under ") + literal(str(directory)))
        for not_written in downloaded.skipped:
            console.print(Text("not written ", "red") + literal(not_written.path) + Text(": ")
                          + literal(not_written.reason), soft_wrap=True)
    elif not found.artifacts and not found.skipped:
        console.print(Text("none: the run is still going, never had a sandbox, or asked for no "
                           "artifacts (tether run --artifact GLOB)", "dim"))
