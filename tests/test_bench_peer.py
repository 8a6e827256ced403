"""bench/peer_pydantic_ai.py: the peer `make bench` measures tether against plays the same
script on pydantic-ai's current Temporal API, and neither it nor the deprecated API it is
shown beside for one release prints a warning. On the suite's dev server, in a process of
its own, so every warning pydantic-ai or the workflow sandbox prints reaches its stderr."""

from __future__ import annotations

import asyncio
import sys
import textwrap

import pytest

from tests.helpers import ROOT

PLAY_BOTH = textwrap.dedent("""
    import asyncio, sys, uuid
    from temporalio.client import Client
    from temporalio.worker import Worker
    from pydantic_ai.durable_exec.temporal import PydanticAIPlugin
    from bench import peer_pydantic_ai as peer

    async def main():
        client = await Client.connect(sys.argv[1], plugins=[PydanticAIPlugin()])
        for workflow in (peer.PeerAgentRun, peer.PeerLegacyAgentRun):
            queue = f"peer-{uuid.uuid4().hex[:8]}"
            async with Worker(client, task_queue=queue, workflows=[workflow]):
                handle = await client.start_workflow(
                    workflow.run, "go", id=f"peer-{uuid.uuid4().hex[:8]}", task_queue=queue)
                output = await asyncio.wait_for(handle.result(), 120)
                history = await handle.fetch_history()
                kinds = [e.activity_task_scheduled_event_attributes.activity_type.name
                         for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
                print(workflow.__name__, output, sum("model_request" in k for k in kinds),
                      sum("call_tool" in k for k in kinds))

    asyncio.run(main())
""")


@pytest.fixture(scope="module")
async def played(temporal_address: str) -> tuple[str, str]:
    """Both peers' runs, once: what they printed, and what went to stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PLAY_BOTH, temporal_address, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


async def test_the_peer_plays_the_benchmark_script_as_activities_on_pydantic_ais_current_api(
        played: tuple[str, str]):
    assert "PeerAgentRun Done after 30 turns. 30 29" in played[0].splitlines()


async def test_the_deprecated_peer_plays_the_same_script_beside_it(played: tuple[str, str]):
    assert "PeerLegacyAgentRun Done after 30 turns. 30 29" in played[0].splitlines()


async def test_neither_peer_prints_a_warning(played: tuple[str, str]):
    assert "Warning" not in played[1], played[1]
