"""Images without the executor: tool calls go through `docker exec`, slower and without the
ledger, but still hardened, keyed and timed out."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import pytest
from tether.contracts import SandboxSpec
from tether.sandbox.manager import StillRunning

from tests.helpers import sandboxes
from tests.sandbox.direct import call, direct_labels


@pytest.fixture
async def plain_sandbox(docker_engine) -> AsyncIterator[str]:
    """A sandbox from an image that doesn't declare the executor (built for the test)."""
    tag = f"tether-sandbox-no-executor:{uuid.uuid4().hex[:8]}"
    dockerfile = f'FROM {SandboxSpec().image}\nLABEL tether.executor=""\nCMD ["sleep", "infinity"]\n'
    await asyncio.to_thread(sandboxes().engine.images.build, fileobj=io.BytesIO(dockerfile.encode()),
                            tag=tag, rm=True)
    try:
        container = await asyncio.to_thread(
            sandboxes().create, SandboxSpec(image=tag), direct_labels(),
            name=f"tether-test-{uuid.uuid4().hex[:12]}")
        yield container.id
        await asyncio.to_thread(sandboxes().remove, container.id)
    finally:
        await asyncio.to_thread(sandboxes().engine.images.remove, tag, force=True)


async def test_shell_calls_run_by_docker_exec_with_their_key(plain_sandbox: str):
    result = await call(plain_sandbox, "echo $TETHER_IDEMPOTENCY_KEY; id -u", key="run/1/0")
    assert result.exit_code == 0
    assert result.stdout == "run/1/0\n10001\n"


async def test_a_docker_exec_call_is_killed_at_its_timeout(plain_sandbox: str):
    result = await call(plain_sandbox, "sleep 30", timeout=1)
    assert result.timed_out and result.exit_code == 137


async def test_tools_that_need_the_executor_say_so(plain_sandbox: str):
    result = await call(plain_sandbox, "print(1)", tool="python")
    assert result.exit_code == 2
    assert "needs the tether executor" in result.stderr


async def test_docker_exec_output_is_capped_as_it_is_read(plain_sandbox: str):
    result = await call(plain_sandbox, "head -c 10000000 /dev/zero | tr '\\0' x", limit=1000)
    assert result.truncated
    assert result.stdout == "x" * 500 + f"\n[... {10_000_000 - 1000} bytes cut by tether ...]\n" + "x" * 500


async def test_a_call_offered_for_a_hand_off_is_not_started_where_nothing_could_join_it(plain_sandbox: str):
    # The workflow's worker offers calls with a hand-off; `docker exec` can't be joined by the
    # host queue's request, so the call is left to that request alone, and runs once.
    append = "echo x >> /workspace/ran; cat /workspace/ran"
    with pytest.raises(StillRunning, match="no executor"):
        await sandboxes().run_tool(plain_sandbox, tool="shell", arguments={"command": append},
                                   key="run/2/0", timeout_s=10, limit_bytes=4096, hand_off_after=0.5)
    assert (await call(plain_sandbox, append, key="run/2/0")).stdout == "x\n"
