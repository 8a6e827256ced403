"""The peer for the per-turn benchmark: pydantic-ai's `TemporalAgent`, with a `FunctionModel`
and a function tool that runs in the worker's process (no sandbox), on the same dev server.

The same workload as tether's run in `bench_turns`: `TURNS` turns, each a model answer of
about 1 KB of text that asks for one tool call whose output is about 1 KB, and a final answer.
pydantic-ai runs the model request and the tool call each as an activity on its own worker,
and passes the conversation to every model activity by value.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic_ai import Agent
    from pydantic_ai.durable_exec.temporal import PydanticAIWorkflow, TemporalAgent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

TURNS = 30
TEXT = "x" * 1000
"""About 1 KB of model text per turn, as tether's scripted turns carry."""
OUTPUT = "y" * 1000
"""About 1 KB of tool output per call, as tether's shell call prints."""


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


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # TemporalAgent, as the issue names it
    agent = Agent(FunctionModel(answer), name="peer", tools=[shell])
    temporal_agent = TemporalAgent(
        agent, activity_config=workflow.ActivityConfig(start_to_close_timeout=timedelta(seconds=60)))


@workflow.defn(name="PeerAgentRun")
class PeerAgentRun(PydanticAIWorkflow):
    __pydantic_ai_agents__ = [temporal_agent]

    @workflow.run
    async def run(self, task: str) -> str:
        result = await temporal_agent.run(task)
        return result.output
