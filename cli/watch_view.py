"""How `tether watch` and `tether run --follow` show a run as it happens.

What happened (steps, tool calls and their results, the model's text) is printed as it
arrives and stays in the terminal's scrollback; how things are now (the text the model is
writing, calls waiting for a person, the budget as bars) is a live footer, redrawn in place
on a terminal. Everything the run produced goes through `render.literal`.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text
from tether.cli.render import clipped, literal, person_said, print_call, print_code, print_result
from tether.contracts.events import (
    ApprovalNeeded,
    BudgetUpdate,
    RunFinished,
    StepFinished,
    StepStarted,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from tether.contracts.run import BudgetView

BAR_WIDTH = 24


def bar(used: float, limit: float | None, label: str, shown: str) -> Text:
    """One budget line: `steps    ████████░░░░  4 of 50`; a limit of None has no bar."""
    line = Text(f"{label:<8} ", "dim")
    if limit is None:
        return line + Text("─" * BAR_WIDTH, "dim") + Text(f"  {shown} (no limit)")
    share = min(max(used / limit, 0.0), 1.0)
    filled = round(share * BAR_WIDTH)
    colour = "green" if share < 0.75 else "yellow" if share < 1 else "red"
    return (line + Text("█" * filled, colour) + Text("░" * (BAR_WIDTH - filled), "dim")
            + Text(f"  {shown}"))


def budget_bars(b: BudgetView) -> list[Text]:
    return [
        bar(b.steps, b.max_steps, "steps", f"{b.steps} of {b.max_steps}" if b.max_steps else str(b.steps)),
        bar(b.tokens, b.max_tokens, "tokens",
            f"{b.tokens:,} of {b.max_tokens:,}" if b.max_tokens else f"{b.tokens:,}"),
        bar(b.cost_usd, b.max_cost_usd, "cost",
            f"${b.cost_usd:.4f} of ${b.max_cost_usd:.2f}" if b.max_cost_usd else f"${b.cost_usd:.4f}"),
        bar(b.seconds, b.max_seconds, "seconds",
            f"{b.seconds:.0f} of {b.max_seconds:g}" if b.max_seconds else f"{b.seconds:.0f}"),
    ]


def result_summary(event: ToolCallFinished) -> Text:
    """A tool call's result in one or two lines: its exit code, limits met, and its output's start."""
    result = event.result
    if result is None:
        return Text("  did not run", "yellow")
    line = Text(f"  exit {result.exit_code}", "green" if result.exit_code == 0 else "red")
    line.append(f" · {result.duration_ms} ms", "dim")
    if result.timed_out:
        line.append(" · timed out", "yellow")
    if result.truncated:
        line.append(" · truncated", "yellow")
    if result.egress_denied:
        line += Text(" · egress denied ", "red") + literal(", ".join(result.egress_denied), "red")
    if result.egress_bytes:
        line.append(f" · egress {size(result.egress_bytes)}", "dim")
    output = (result.stdout or result.stderr).strip()
    if output:
        line += Text(" · ", "dim") + clipped(output.replace("\n", " ⏎ "), 200)
    return line


def size(count: int) -> str:
    """Bytes as a person reads them: `812 B`, `3.4 KiB`, `256.0 MiB`."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


class WatchView:
    """Prints a run's events; on a terminal, with a live footer."""

    def __init__(self, console: Console, workflow_id: str) -> None:
        self.console = console
        self.workflow_id = workflow_id
        self.state = "starting"
        self.writing: tuple[int, str] | None = None
        self.waiting: dict[str, ApprovalNeeded] = {}
        self.budget: BudgetView | None = None
        self.result: RunFinished | None = None
        self.said: set[int] = set()
        """Steps whose model text is printed: with their first call, or when they finish."""
        self.live = Live(console=console, refresh_per_second=8, transient=True,
                         get_renderable=self.footer) if console.is_terminal else None

    def __enter__(self) -> WatchView:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.stop()

    def footer(self) -> RenderableType:
        parts: list[RenderableType] = [Text(f"{self.workflow_id} · {self.state}", "bold")]
        if self.writing is not None:
            step, text = self.writing
            tail = "\n".join(text.splitlines()[-6:])[-600:]
            parts.append(Text(f"step {step} is writing: ", "cyan") + literal(tail))
        for waiting in self.waiting.values():
            answer = waiting.status_command if waiting.capped else waiting.approve_command
            parts.append(Text("awaiting approval: ", "yellow") + literal(answer, "bold"))
        if self.budget is not None:
            parts += budget_bars(self.budget)
        return Group(*parts)

    def show(self, event: Any) -> None:
        print_ = self.console.print
        if isinstance(event, StepStarted):
            self.console.rule(literal(f"step {event.step} · {event.model}"
                                      + (" · inherited" if event.inherited else "")), style="dim")
            for message in event.messages:
                print_(person_said(message), soft_wrap=True)
        elif isinstance(event, TextDelta):
            text = self.writing[1] if self.writing and self.writing[0] == event.step else ""
            self.writing = (event.step, text + event.text)
        elif isinstance(event, ToolCallStarted):
            self.writing = None
            if event.text:  # what the model said comes before what its calls did
                self.said.add(event.step)
                print_(literal(event.text), soft_wrap=True)
            print_call(self.console, Text("→ ", "cyan") + literal(event.call_id, "dim") + Text(" ")
                       + literal(event.tool, "bold"), event.arguments, 300)
        elif isinstance(event, ApprovalNeeded) and event.workflow_id is not None:
            self.show_child_waiting(event)
        elif isinstance(event, ApprovalNeeded):
            self.waiting[event.call_id] = event
            self.show_waiting(event)
        elif isinstance(event, ToolCallFinished):
            self.waiting.pop(event.call_id, None)
            print_(Text("← ", "cyan") + literal(event.call_id, "dim") + Text(" ")
                   + literal(event.tool) + result_summary(event), soft_wrap=True)
        elif isinstance(event, StepFinished):
            self.writing = None
            if event.text and event.step not in self.said:
                print_(literal(event.text), soft_wrap=True)
            if event.note:
                print_(Text("note: ", "dim") + literal(event.note, "dim"), soft_wrap=True)
        elif isinstance(event, BudgetUpdate):
            self.state, self.budget = event.state, event.budget
        elif isinstance(event, RunFinished):
            self.result = event
        if self.live is not None:
            self.live.refresh()

    def show_waiting(self, event: ApprovalNeeded) -> None:
        """A call waiting for a person, with the model's reason and the digest of what would
        run. Arguments history holds cut are never offered for approval from here: the
        command that prints them whole is, and it prints the one approving exactly them."""
        print_ = self.console.print
        print_(Text("awaiting approval ", "bold yellow") + literal(event.call_id) + Text(": ")
               + literal(event.tool, "bold") + Text(" ") + literal(json.dumps(event.arguments)),
               soft_wrap=True)
        print_code(self.console, event.arguments)
        if event.text:
            print_(Text("  the model: ", "yellow") + literal(event.text), soft_wrap=True)
        if event.arguments_digest:
            print_(Text("  digest: ", "yellow") + literal(event.arguments_digest), soft_wrap=True)
        deny = Text("   deny: ", "yellow") + literal(
            f'tether approve {self.workflow_id} {event.call_id} --deny --reason "..."')
        if event.capped:
            print_(Text("  cut in the middle here: read it whole, and approve it, with ", "yellow")
                   + literal(event.status_command, "bold") + deny, soft_wrap=True)
        else:
            print_(Text("  approve: ", "yellow") + literal(event.approve_command, "bold") + deny,
                   soft_wrap=True)

    def show_child_waiting(self, event: ApprovalNeeded) -> None:
        """A sub-agent's call waiting for a person: whose it is, and the commands that show it
        whole and answer it, on that sub-agent."""
        print_ = self.console.print
        print_(Text("sub-agent ", "bold yellow") + literal(event.workflow_id or "", "bold")
               + Text(" awaits approval of ", "bold yellow") + literal(event.call_id) + Text(": ")
               + literal(event.tool, "bold"), soft_wrap=True)
        print_(Text("  approve: ", "yellow") + literal(event.approve_command, "bold")
               + Text("   read it whole: ", "yellow") + literal(event.status_command), soft_wrap=True)

    def finish(self, links: dict[str, str]) -> None:
        """After the footer is gone: the result, as `tether run --wait` prints it."""
        event = self.result
        if event is None:
            return
        if self.budget is not None:
            for line in budget_bars(self.budget):
                self.console.print(line)
        if event.result is not None:
            print_result(self.console, event.result, links)
        else:
            self.console.print(Text(f"run {event.status}: ", "bold red") + literal(event.error or ""),
                               soft_wrap=True)
