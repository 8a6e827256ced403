"""A step's tool calls: checked, approved where the run asks for it, run concurrently in the
run's sandbox on the worker that holds it, and each turned into a result for the model.

Whatever goes wrong with one call becomes that call's result, so the model can read it and
carry on; only an interruption or a sandbox that can't be made stops the step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, FailureError
from tether.contracts import (
    AgentRunInput,
    Message,
    NewMessage,
    PendingApproval,
    ToolCall,
    ToolCallInput,
    ToolCallOutput,
    ToolResult,
)
from tether.contracts.activities import (
    FUNCTION_CALL,
    MCP_CALL,
    TOOL_CALL,
    TOOL_CALL_HERE,
    SandboxHandle,
    ToolCallHereInput,
    ToolCallHereOutput,
)
from tether.contracts.caps import cap_arguments, cap_text
from tether.contracts.digests import arguments_digest, text_digest
from tether.contracts.tools import FunctionCallInput, McpCallInput, ToolRoute
from tether.workflows import telemetry
from tether.workflows.delegation import DELEGATE_PATCH, Delegation
from tether.workflows.failures import host_gone, root_message, sandbox_lost, stop_if_cancelled
from tether.workflows.idle_release import IdleRelease
from tether.workflows.options import ActivityOptions
from tether.workflows.sandbox_lease import SandboxLease
from tether.workflows.state import ApprovalWait, RunState
from tether.workflows.tool_calls import invalid_call_reason

SANDBOXES_PER_CALL = 3
"""A call runs in at most this many sandboxes: a lost one is replaced (twice at most), so a
call outlives faults that come one after another, and one that kills every sandbox it runs
in still ends."""
LOST_AGAIN_PATCH = "replace-a-lost-replacement"
HERE_FIRST_PATCH = "tool-call-here-first"
T = TypeVar("T")


class ToolRunner:
    def __init__(
        self, state: RunState, input: AgentRunInput, lease: SandboxLease,
        options: ActivityOptions, *, on_change: Callable[[], None],
    ) -> None:
        self.state = state
        self.input = input
        self.lease = lease
        self.options = options
        self.on_change = on_change
        self.delegation = Delegation(state, input, on_change=on_change)
        self.idle = IdleRelease(lease)

    async def run(
        self, calls: list[ToolCall], *, lost: list[str] | None = None, text: str | None = None,
        digests: Sequence[str] = (),
    ) -> list[ToolResult]:
        """Runs the calls at once; their results go to the next model call, in order. Each
        sandbox lost under a call, and each destination the network policy refused during one
        (`egress denied HOST:PORT`), is told in `lost` (the step's note in the transcript).
        `text` (what the model said with the calls) and `digests` (of each call's whole
        arguments) are shown to a person asked to approve one."""
        lost = [] if lost is None else lost
        asked = Asked(text=text, digests=list(digests))
        outcomes = await asyncio.gather(
            *(self._counted(self._run_one(i, call, lost, asked)) for i, call in enumerate(calls)))
        self.state.tool_results.extend(message for _, message in outcomes)
        results = [result for result, _ in outcomes]
        telemetry.tool_calls(calls, results, self.state.tool_names(self.input.tools))
        for call, result in zip(calls, results, strict=True):
            lost.extend(f"{call.name}: egress denied {destination}" for destination in result.egress_denied)
            self.state.egress_bytes += result.egress_bytes
        return results

    async def _counted(self, work: Awaitable[T]) -> T:
        async with self.idle.call():
            return await work

    async def _run_one(
        self, index: int, call: ToolCall, lost: list[str], asked: Asked,
    ) -> tuple[ToolResult, NewMessage]:
        problem = invalid_call_reason(call, self.state.tool_names(self.input.tools))
        if problem is None and call.name in self.input.approval.tools:
            problem = await self._await_approval(index, call, asked)
        if problem is not None:
            return refused(call, problem)
        route = self.state.routes.get(call.name)
        if route is not None and route.kind == "delegate" and workflow.patched(DELEGATE_PATCH):
            self.on_change()
            return await self.delegation.run(index, call, lost)
        if route is not None and route.kind == "function":
            self.on_change()  # it outlasts this workflow task: the search attributes say so
            return await self._run_function(index, call, route)
        if route is not None and route.kind == "mcp":
            self.on_change()
            return await self._run_mcp(index, call, route, lost)
        for attempt in range(SANDBOXES_PER_CALL):
            sandbox = await self.lease.get()
            request = ToolCallInput(
                workflow_id=workflow.info().workflow_id, step=self.state.step,
                index=index, call=call, assistant_ref=self.state.head,
                container_id=sandbox.container_id, started_at=sandbox.started_at,
                timeout_seconds=self.input.sandbox.tool_timeout_seconds,
                output_limit_bytes=self.input.sandbox.output_limit_bytes,
                network=None if self.input.sandbox.network == "none" else self.input.sandbox.network,
            )
            if workflow.patched(HERE_FIRST_PATCH):
                here = await self._run_here(request, sandbox)
                if here is not None:
                    return here.result, NewMessage(ref=here.message_ref)
            self.on_change()
            try:
                output = await workflow.execute_activity(
                    TOOL_CALL,
                    request,
                    result_type=ToolCallOutput,
                    task_queue=sandbox.task_queue,
                    start_to_close_timeout=timedelta(
                        seconds=self.input.sandbox.tool_timeout_seconds) + self.options.tool_grace,
                    schedule_to_start_timeout=self.options.host_wait(sandbox.host_wait_seconds),
                    heartbeat_timeout=self.options.tool_heartbeat,
                    retry_policy=self.options.tool_retry,
                    # An interrupted call is killed in its sandbox before the run moves on.
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"step {self.state.step} · {call.name}",
                )
                return output.result, NewMessage(ref=output.message_ref)
            except ActivityError as error:
                stop_if_cancelled(error)
                # The worker holding the sandbox, or the container, is gone. The run goes on
                # in a fresh sandbox and says so; a replacement lost too (faults one after
                # another) is replaced once more, behind a patch: older runs gave up here.
                if sandbox_lost(error) and (attempt == 0 or workflow.patched(LOST_AGAIN_PATCH)):
                    again = attempt + 1 < SANDBOXES_PER_CALL
                    self.state.last_error = (
                        f"sandbox on {sandbox.worker} lost ({root_message(error)}); "
                        + ("continuing in a new sandbox" if again
                           else f"the call lost {SANDBOXES_PER_CALL} sandboxes and did not run again"))
                    lost.append(f"{call.name}: {self.state.last_error}")
                    self.lease.lose(sandbox, host_answered=not host_gone(error))
                    if again:
                        continue
                return refused(call, f"tool call failed: {root_message(error)}", exit_code=125)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _run_here(self, request: ToolCallInput, sandbox: SandboxHandle) -> ToolCallOutput | None:
        """The call as a local activity, when this workflow's worker holds the sandbox: no
        dispatch through Temporal's matching, no workflow task of its own. None: it goes to
        the host queue (another worker holds the sandbox, or the call outran the hand-off and
        the host queue's activity joins it by its key), and so does any failure here, which
        the host queue's attempts then report as they always have."""
        try:
            here = await workflow.execute_local_activity(
                TOOL_CALL_HERE,
                ToolCallHereInput(call=request, worker=sandbox.worker,
                                  hand_off_after_seconds=self.options.tool_here_hand_off.total_seconds()),
                result_type=ToolCallHereOutput,
                start_to_close_timeout=self.options.tool_here_timeout,
                retry_policy=RetryPolicy(maximum_attempts=1),
                # An interrupted call is killed in its sandbox before the run moves on.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"step {self.state.step} · {request.call.name}",
            )
        except FailureError as error:
            # A local activity's failure may arrive as its cause itself (an ApplicationError),
            # not wrapped in an ActivityError.
            if isinstance(error, ActivityError):
                stop_if_cancelled(error)
            elif isinstance(error, CancelledError):
                raise asyncio.CancelledError() from error
            return None
        return here.output

    async def _run_function(
        self, index: int, call: ToolCall, route: ToolRoute,
    ) -> tuple[ToolResult, NewMessage]:
        """A function tool: an activity on the shared queue, run by any worker that has it."""
        try:
            output = await workflow.execute_activity(
                FUNCTION_CALL,
                FunctionCallInput(workflow_id=workflow.info().workflow_id, step=self.state.step,
                                  index=index, call=call, assistant_ref=self.state.head),
                result_type=ToolCallOutput,
                start_to_close_timeout=(timedelta(seconds=route.timeout_seconds)
                                        if route.timeout_seconds else self.options.function_timeout),
                retry_policy=RetryPolicy(maximum_attempts=route.retries + 1),
                summary=f"step {self.state.step} · {call.name}",
            )
        except ActivityError as error:
            stop_if_cancelled(error)
            return refused(call, f"tool call failed: {root_message(error)}", exit_code=125)
        return output.result, NewMessage(ref=output.message_ref)

    async def _run_mcp(
        self, index: int, call: ToolCall, route: ToolRoute, lost: list[str],
    ) -> tuple[ToolResult, NewMessage]:
        """An MCP server's tool: on the worker that holds the run's sandbox for a server that
        runs in it (started again in a new sandbox when one is lost), on any worker for a
        server reached over HTTP."""
        [server] = [s for s in self.input.mcp_servers if s.name == route.server]
        in_sandbox = server.command is not None
        for attempt in range(2):
            sandbox = await self.lease.get() if in_sandbox else None
            try:
                output = await workflow.execute_activity(
                    MCP_CALL,
                    McpCallInput(workflow_id=workflow.info().workflow_id, step=self.state.step,
                                 index=index, call=call, assistant_ref=self.state.head, server=server,
                                 remote_name=route.remote_name or call.name,
                                 container_id=sandbox.container_id if sandbox else None,
                                 started_at=sandbox.started_at if sandbox else None,
                                 timeout_seconds=self.input.sandbox.tool_timeout_seconds),
                    result_type=ToolCallOutput,
                    task_queue=sandbox.task_queue if sandbox else None,
                    start_to_close_timeout=timedelta(
                        seconds=self.input.sandbox.tool_timeout_seconds) + self.options.tool_grace,
                    schedule_to_start_timeout=(
                        self.options.host_wait(sandbox.host_wait_seconds) if sandbox else None),
                    retry_policy=self.options.tool_retry,
                    summary=f"step {self.state.step} · {server.name}.{route.remote_name}",
                )
                return output.result, NewMessage(ref=output.message_ref)
            except ActivityError as error:
                stop_if_cancelled(error)
                if sandbox is not None and attempt == 0 and sandbox_lost(error):
                    self.state.last_error = (
                        f"sandbox on {sandbox.worker} lost ({root_message(error)}); "
                        f"starting MCP server {server.name!r} again in a new sandbox")
                    lost.append(f"{call.name}: {self.state.last_error}")
                    self.lease.lose(sandbox, host_answered=not host_gone(error))
                    continue
                return refused(call, f"tool call failed: {root_message(error)}", exit_code=125)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _await_approval(self, index: int, call: ToolCall, asked: Asked) -> str | None:
        """Waits, durably, for a person's decision. Returns why the call may not run, or None."""
        call_id = f"{self.state.step}-{index}"
        wait = ApprovalWait(request=approval_request(call_id, call, asked.digest(index, call),
                                                     asked.text, self.state.head))
        self.state.approvals[call_id] = wait
        self.on_change()
        timeout = self.input.approval.timeout_seconds
        try:
            async with self.idle.waiting_for_person():
                await workflow.wait_condition(lambda: wait.approved is not None, timeout=timeout,
                                              timeout_summary=f"approval of {call_id}")
        except TimeoutError:
            if wait.approved is None:
                return f"no person approved this call within {timeout:g} s, so it did not run"
        finally:
            del self.state.approvals[call_id]
            self.on_change()
        if wait.approved:
            return None
        return f"a person denied this call: {wait.reason or 'no reason given'}"


@dataclass(frozen=True)
class Asked:
    """What the model turn said beside its calls, for the person asked to approve one."""

    text: str | None
    digests: list[str]

    def digest(self, index: int, call: ToolCall) -> str | None:
        """The digest of the call's whole arguments: the model activity's, or for a history
        recorded before it gave them, one made here when history holds them whole."""
        if index < len(self.digests):
            return self.digests[index]
        return None if cut(call.arguments) else arguments_digest(call.arguments)


def cut(arguments: dict[str, Any]) -> bool:
    """Whether history's copy of a call's arguments had a string cut. A cut string keeps
    2,000 characters and a note, so it is over the cap: capping it again would change it."""
    return cap_arguments(arguments) != arguments


def approval_request(
    call_id: str, call: ToolCall, digest: str | None, text: str | None, assistant_ref: str | None,
) -> PendingApproval:
    """What a person is shown of a waiting call. Only the query and the Web UI's details carry
    it, never a command: history holds the text and the arguments once already. The
    arguments are history's copy, capped by the model activity."""
    capped = cut(call.arguments) if digest is None else arguments_digest(call.arguments) != digest
    shown_text = cap_text(text)
    return PendingApproval(
        call_id=call_id, tool=call.name, arguments=call.arguments, arguments_digest=digest,
        capped=capped, assistant_ref=assistant_ref, text=shown_text,
        text_digest=text_digest(text) if text is not None and shown_text != text else None)


def refused(call: ToolCall, reason: str, *, exit_code: int = 126) -> tuple[ToolResult, NewMessage]:
    """A call that did not run (or failed outside its sandbox), told to the model as its result."""
    result = ToolResult(exit_code=exit_code, stderr=reason)
    message = Message(role="tool", name=call.name, tool_call_id=call.id,
                      content=result.model_dump_json())
    return result, NewMessage(message=message)
