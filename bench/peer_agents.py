"""The peer's agents for the per-turn benchmark: a `FunctionModel` that plays the same script
as tether's run, and a function tool that runs in the worker's process (no sandbox).

Built here, outside any workflow, and imported by `bench/peer_pydantic_ai.py` passed through
the workflow sandbox: pydantic-ai binds an agent's activities when the agent is constructed,
which it refuses inside a workflow, and the sandbox would otherwise build them again for
every run.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from pydantic_ai import Agent, PydanticAIDeprecationWarning
from pydantic_ai.durable_exec.temporal import TemporalAgent, TemporalDurability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from temporalio.workflow import ActivityConfig

TURNS = 30
TEXT = "x" * 1000
"""About 1 KB of model text per turn, as tether's scripted turns carry."""
OUTPUT = "y" * 1000
"""About 1 KB of tool output per call, as tether's shell call prints."""
ACTIVITY_CONFIG = ActivityConfig(start_to_close_timeout=timedelta(seconds=60))


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Turn N of the script, N being the model responses so far plus one: a tool call in
    each of the first `TURNS - 1`, a final answer in the last."""
    turn = 1 + sum(isinstance(m, ModelResponse) for m in messages)
    if turn >= TURNS:
        return ModelResponse(parts=[TextPart(f"Done after {turn} turns.")])
    return ModelResponse(parts=[TextPart(f"Turn {turn:02d}. {TEXT}"),
                                ToolCallPart("shell", {"command": f"echo step {turn}"})])


def shell(command: str) -> str:
    """Stands in for a shell: about 1 KB of output, computed in the worker's process."""
    return f"{command}\n{OUTPUT}"


agent = Agent(FunctionModel(answer), name="peer", tools=[shell],
              capabilities=[TemporalDurability(activity_config=ACTIVITY_CONFIG)])
"""pydantic-ai's current Temporal API: a regular agent with the `TemporalDurability`
capability, which runs each model request and each tool call as an activity."""

with warnings.catch_warnings():
    # Deprecated in favour of `TemporalDurability`; measured beside it for one release so the
    # change of peer shows in BENCHMARKS.md. Its own name keeps its activities apart.
    warnings.simplefilter("ignore", PydanticAIDeprecationWarning)
    legacy_agent = TemporalAgent(
        Agent(FunctionModel(answer), name="peer_legacy", tools=[shell]),
        activity_config=ACTIVITY_CONFIG)
"""The API `make bench` measured against until 0.2.0: `TemporalAgent` wrapping an agent."""
