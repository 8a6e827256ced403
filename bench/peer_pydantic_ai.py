"""The peer for the per-turn benchmark: pydantic-ai on the same dev server, with a
`FunctionModel` and a function tool in the worker's process (`bench/peer_agents.py`).

The same workload as tether's run in `bench_turns`: `TURNS` turns, each a model answer of
about 1 KB of text that asks for one tool call whose output is about 1 KB, and a final answer.
pydantic-ai runs the model request and the tool call each as an activity on its own worker,
and passes the conversation to every model activity by value.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic_ai.durable_exec.temporal import PydanticAIWorkflow

    from bench.peer_agents import TURNS, agent, legacy_agent

__all__ = ["TURNS", "PeerAgentRun", "PeerLegacyAgentRun"]


@workflow.defn(name="PeerAgentRun")
class PeerAgentRun(PydanticAIWorkflow):
    """The agent with `TemporalDurability`, as pydantic-ai's users write it today."""

    __pydantic_ai_agents__ = [agent]

    @workflow.run
    async def run(self, task: str) -> str:
        result = await agent.run(task)
        return result.output


@workflow.defn(name="PeerLegacyAgentRun")
class PeerLegacyAgentRun(PydanticAIWorkflow):
    """The deprecated `TemporalAgent`, kept for one release beside the current API."""

    __pydantic_ai_agents__ = [legacy_agent]

    @workflow.run
    async def run(self, task: str) -> str:
        result = await legacy_agent.run(task)
        return result.output
