"""One tool call per activity, executed in the run's sandbox, exactly once per key.

Two ways in: `tool_call` on the host queue of the worker that holds the sandbox, and
`tool_call_here`, a local activity offered first to the worker running the workflow. When
that worker holds the sandbox too (one worker doing both, the usual case), the call runs
without a trip through Temporal's matching: about 40 ms of dispatch and a workflow task
less per call. A call that can't run here, or runs long, goes on to the host queue.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether import tracing
from tether.activities.drain import DrainGate
from tether.activities.store_errors import store_failure
from tether.contracts import Message, ToolCallInput, ToolCallOutput, ToolResult
from tether.contracts.activities import (
    TOOL_CALL,
    TOOL_CALL_HERE,
    ToolCallHereInput,
    ToolCallHereOutput,
)
from tether.contracts.caps import cap_result
from tether.egress.proxy import EgressProxy, EgressUnavailable
from tether.sandbox.channel import ChannelClosed
from tether.sandbox.manager import SandboxBroken, SandboxGone, SandboxManager, StillRunning
from tether.store import Conversations, StoreError

DENIED_LISTED = 20
log = logging.getLogger("tether.egress")


class ToolActivities:
    """Runs tool calls in the sandboxes of this worker's engine; results go to the store."""

    def __init__(self, *, conversations: Conversations, sandboxes: SandboxManager,
                 worker_id: str, gate: DrainGate, egress: EgressProxy | None = None) -> None:
        self.egress = egress
        """The host's egress proxy: what it refused during a call goes into the call's result."""
        self.conversations = conversations
        self.sandboxes = sandboxes
        self.worker_id = worker_id
        self.gate = gate
        """The host's drain gate: a draining host runs no new call here either."""

    @activity.defn(name=TOOL_CALL)
    async def call_tool(self, input: ToolCallInput) -> ToolCallOutput:
        return await self._run(input, hand_off_after=None)

    @activity.defn(name=TOOL_CALL_HERE)
    async def call_tool_here(self, input: ToolCallHereInput) -> ToolCallHereOutput:
        answer = ToolCallHereOutput(step=input.call.step, index=input.call.index)
        if input.worker != self.worker_id:
            return answer.model_copy(update={"why_not": f"the sandbox is on worker {input.worker}"})
        if self.gate.draining:
            return answer.model_copy(update={"why_not": "this worker is draining"})
        try:
            with self.gate.counting():
                output = await self._run(input.call, hand_off_after=input.hand_off_after_seconds)
        except StillRunning as handed_off:
            return answer.model_copy(update={"why_not": f"{handed_off}: handed to the host queue"})
        return answer.model_copy(update={"output": output})

    async def _run(self, input: ToolCallInput, *, hand_off_after: float | None) -> ToolCallOutput:
        try:
            arguments = await self.conversations.full_arguments_async(input.assistant_ref, input.call)
            await self._egress_for(input)
            result = await self.sandboxes.run_tool(
                input.container_id,
                tool=input.call.name,
                arguments=arguments,
                key=input.idempotency_key,
                timeout_s=input.timeout_seconds,
                limit_bytes=input.output_limit_bytes,
                # A local activity has no heartbeat: it is short (the hand-off bounds it).
                tick=None if hand_off_after is not None else lambda: activity.heartbeat(input.call.name),
                started_at=input.started_at,
                hand_off_after=hand_off_after,
            )
        except SandboxGone as error:
            raise ApplicationError(str(error), type="SandboxGone", non_retryable=True) from None
        except SandboxBroken as error:
            raise ApplicationError(str(error), type="SandboxBroken", non_retryable=True) from None
        except StoreError as error:
            raise store_failure(error) from None
        except ChannelClosed as error:
            # Retryable: the next attempt reattaches, and the executor's ledger answers for a
            # call that already finished.
            raise ApplicationError(str(error), type="SandboxStreamLost") from None
        result = await self._with_egress(input.container_id, result)
        message = Message(
            role="tool", name=input.call.name, tool_call_id=input.call.id,
            content=render_for_model(result),
        )
        stored = message.model_dump_json(exclude_defaults=True).encode()
        try:
            ref = await self.conversations.blobs.put_async(stored)
        except StoreError as error:
            raise store_failure(error) from None
        return ToolCallOutput(result=cap_result(result), message_ref=ref)


    async def _egress_for(self, input: ToolCallInput) -> None:
        """Opens the sandbox's egress socket again when this worker took the sandbox over from
        one that died (the socket's directory, mounted in the sandbox, is where it was). A
        proxy that can't start leaves the sandbox without a way out, which its tools are told."""
        if input.network is None or self.egress is None or self.egress.serves(input.container_id):
            return
        container = await asyncio.to_thread(self.sandboxes.find, input.container_id, input.started_at)
        try:
            await self.egress.open(container.name, input.network)
        except EgressUnavailable as error:
            log.warning("sandbox %s has no way out: %s", container.name, error)
            return
        self.egress.made(container.name, input.container_id)

    async def _with_egress(self, container_id: str, result: ToolResult) -> ToolResult:
        """The result, saying which destinations the proxy refused while the call ran (a
        sandbox's calls run one at a time or share the blame: the policy is the run's)."""
        if self.egress is None or not self.egress.serves(container_id):
            return result
        await self.egress.settle()
        decisions = self.egress.take(container_id)
        tracing.egress_seen(decisions)
        moved = sum(d.sent + d.received for d in decisions)
        if moved:
            result = result.model_copy(update={"egress_bytes": moved})
        denied = sorted({d.destination for d in decisions if not d.allowed})
        if not denied:
            return result
        if len(denied) > DENIED_LISTED:  # history holds the list: a tool trying every host can't grow it
            denied = [*denied[:DENIED_LISTED], f"(and {len(denied) - DENIED_LISTED} more)"]
        said = "".join(f"\n[tether: egress denied {destination}]" for destination in denied)
        return result.model_copy(update={"egress_denied": denied, "stderr": result.stderr + said})


@activity.defn(name=TOOL_CALL_HERE)
async def no_sandbox_here(input: ToolCallHereInput) -> ToolCallHereOutput:
    """The same local activity on a worker with no Docker engine: every call goes on to the
    host queue of the worker that holds its sandbox."""
    return ToolCallHereOutput(step=input.call.step, index=input.call.index,
                              why_not="this worker runs no sandboxes")


def render_for_model(result: ToolResult) -> str:
    return result.model_dump_json()
