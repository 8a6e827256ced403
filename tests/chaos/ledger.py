"""The chaos runs' workload and how their side effects are checked.

Every step is one real shell call that appends the step's number to `/workspace/ledger` and
prints the whole ledger. The ledger lives in the sandbox, so it shows each append that
happened in that sandbox: an append made twice shows as a duplicate, one that never happened
as a gap. A lost sandbox takes its ledger with it; the call runs again in a new sandbox,
whose ledger starts at that step, and the transcript must say the sandbox was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.contracts import StepRecord

from tests.scripts import scripted_run, turn

STEP_SLEEP_S = 2
"""How long each call lasts after its append: a fault at a random moment most likely finds a
call running."""


def ledger_run(number: int, steps: int) -> dict[str, Any]:
    appends = [turn(shell=f"echo {step} >> ledger; tr '\\n' ' ' < ledger; sleep {STEP_SLEEP_S}")
               for step in range(1, steps + 1)]
    return scripted_run(f"chaos run {number}", *appends, turn(read_file="ledger"),
                        turn("{{last_output}}"), budget={"max_steps": steps + 5})


@dataclass
class LedgerCheck:
    """What one run's transcript says its calls did."""

    sandboxes: int = 1
    """Sandboxes the calls ran in: one plus each time the ledger started again."""
    restarted_at: list[int] = field(default_factory=list)
    """The steps whose call found an empty ledger: the first call in a new sandbox."""
    duplicates: int = 0
    missing: int = 0
    failed_calls: int = 0
    problems: list[str] = field(default_factory=list)
    lost_notes: list[int] = field(default_factory=list)
    """The steps whose transcript note says the sandbox was lost."""
    last_ledger: list[int] = field(default_factory=list)


def check_ledgers(transcript: list[StepRecord], steps: int) -> LedgerCheck:
    check = LedgerCheck()
    shell_steps = [record for record in transcript
                   if record.tool_calls and record.tool_calls[0].name == "shell"]
    if len(shell_steps) != steps:
        check.problems.append(f"{len(shell_steps)} shell steps in the transcript, not {steps}")
    start = 1
    last_seen: dict[int, tuple[int, list[int]]] = {}
    """Each sandbox's (by its first step) last printed ledger, and the step that printed it."""
    for record in shell_steps:
        step = record.step
        if record.note and "lost" in record.note:
            check.lost_notes.append(step)
        [result] = record.tool_results
        if result.exit_code != 0:
            check.failed_calls += 1
            check.problems.append(f"step {step}'s call failed: {result.stderr[-300:]}")
            continue
        ledger = [int(entry) for entry in result.stdout.split()]
        if ledger and ledger[0] == step and step > 1:
            check.sandboxes += 1
            check.restarted_at.append(step)
            start = step
        if not ledger or ledger[-1] != step or ledger[0] != start:
            check.problems.append(f"step {step}: ledger {ledger}, expected {start}..{step}")
        last_seen[start] = (step, ledger)
        check.last_ledger = ledger
    # Each sandbox's last ledger holds every append made in it until then: counted once there.
    for first, (last, ledger) in last_seen.items():
        check.duplicates += len(ledger) - len(set(ledger))
        check.missing += len(set(range(first, last + 1)) - set(ledger))
    return check
