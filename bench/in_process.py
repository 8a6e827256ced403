"""The same turns with no Temporal at all: the baseline for what durability costs a turn.

One process runs the loop a framework without durable execution runs: the scripted model
that tether's run plays, each tool call it asks for through the same executor in a sandbox
of the same engine, and the conversation as a list in memory. No workflow, no activities,
no event history, no store: a crash loses the run. tether's turn less this one is the price
of surviving that crash.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from tether.activities.tools import render_for_model
from tether.contracts import AgentRunInput, Message
from tether.contracts.tools import BUILTIN_TOOLS
from tether.llm import Providers
from tether.sandbox.manager import SandboxManager


@dataclass
class Played:
    turns: list[float]
    """Seconds from each model call's start to the next's, as the benchmark reads tether's
    turns from its history."""
    answer: str
    """The final answer, which a script can make from what its tools printed."""


async def play(run_input: dict[str, Any], *, providers: Providers,
               sandboxes: SandboxManager, labels: dict[str, str]) -> Played:
    """Plays the run's script to its final answer; the sandbox (with `labels`) is made before
    the loop and removed after it."""
    parsed = AgentRunInput.model_validate(run_input)
    spec, sandbox_spec = parsed.model, parsed.sandbox
    tools = [BUILTIN_TOOLS[name] for name in parsed.tools]
    model = providers.get(spec.provider)
    container = await asyncio.to_thread(
        sandboxes.create, sandbox_spec, labels,
        name=f"tether-bench-{uuid.uuid4().hex[:12]}")
    messages = [Message(role="system", content=parsed.system_prompt),
                Message(role="user", content=parsed.task)]
    clock = asyncio.get_running_loop().time
    starts: list[float] = []
    try:
        for step in range(1, (parsed.budget.max_steps or 1_000) + 1):
            starts.append(clock())
            turn = await model.complete(spec, messages, tools)
            messages.append(Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls))
            if not turn.tool_calls:
                return Played([b - a for a, b in pairwise(starts)], turn.text or "")
            for index, call in enumerate(turn.tool_calls):
                result = await sandboxes.run_tool(
                    container.id, tool=call.name, arguments=call.arguments,
                    key=f"in-process/{step}/{index}",
                    timeout_s=sandbox_spec.tool_timeout_seconds,
                    limit_bytes=sandbox_spec.output_limit_bytes)
                messages.append(Message(role="tool", name=call.name, tool_call_id=call.id,
                                        content=render_for_model(result)))
    finally:
        await asyncio.to_thread(sandboxes.remove, container.id)
    raise RuntimeError(f"the script did not end within {parsed.budget.max_steps} steps")
