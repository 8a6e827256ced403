"""Testing agents that run on tether, without a Docker engine unless a run uses the sandbox.

    from tether.testing import TetherTestEnvironment, call, scripted

    async def test_the_agent_looks_the_order_up():
        async with TetherTestEnvironment(tools=[lookup_order]) as env:
            result = await env.run({
                "task": "Where is order A-1?",
                "model": scripted(call("lookup_order", order_id="A-1"), "{{last_output}}"),
                "tools": ["lookup_order"]})
        assert result.status == "completed"

`env.start(input)` returns a `RunHandle` for tests that steer a run (approve, deny, send a
message, cancel); `env.client` is the environment's Temporal client.
"""

from tether._testing.environment import TetherTestEnvironment
from tether._testing.run import RunFailed, RunHandle
from tether._testing.scripts import call, scripted

__all__ = ["RunFailed", "RunHandle", "TetherTestEnvironment", "call", "scripted"]
