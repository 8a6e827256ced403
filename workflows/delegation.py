"""The `delegate` tool: each call a child `AgentRun`, with its own sandbox and a budget carved
from its parent's, whose answer (or why it stopped) is the call's result.

A child's id is its parent's and the call's (`<parent>.delegate-<step>-<index>`), and
starting it is a command of the parent's history: a worker that dies while starting it
leaves either no command (the next worker issues it) or one (the next worker waits on it),
never two. Cancelling the parent's step cancels the children it waits on, and waits until
they have released their sandboxes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from tether.contracts import (
    AgentRunInput,
    AgentRunResult,
    ApprovalPolicy,
    Budget,
    Message,
    ModelSpec,
    NewMessage,
    SandboxSpec,
    ToolCall,
    ToolResult,
    Usage,
)
from tether.contracts.agents import (
    AWAIT_CHILD,
    DELEGATE_ARGUMENTS,
    STORE_TOOL_MESSAGE,
    AgentsPolicy,
    AwaitChildInput,
    ChildWaiting,
    DelegateArguments,
    DelegateArgumentsInput,
)
from tether.contracts.caps import cap_arguments, cap_result
from tether.contracts.names import AGENT_RUN, SIGNAL_CHILD_WAITING
from tether.contracts.run import LONGEST_SECONDS
from tether.workflows.budget import MB, Spent
from tether.workflows.carving import NothingToCarve, Reserved, carve, charged, left
from tether.workflows.failures import root_message
from tether.workflows.state import RunState

DELEGATE_PATCH = "delegate-tool"
ATTACHED_HEARTBEAT = timedelta(seconds=30)
READ_TIMEOUT = timedelta(seconds=30)
TELL_PARENT_PATCH = "sub-agent-tells-its-waiting-calls"
NARROWED = ("cpus", "memory_mb", "pids", "disk_mb", "tool_timeout_seconds", "output_limit_bytes")
"""Sandbox limits a child may lower and never raise."""
REFUSED_AT_START = ("InvalidInput", "RunRefused")
KEPT = ("image", "runtime")
"""Sandbox fields a child keeps as its parent's."""


class Delegation:
    """A run's sub-agents: started, waited on and charged for."""

    def __init__(self, state: RunState, input: AgentRunInput, *, on_change: Callable[[], None]) -> None:
        self.state = state
        self.input = input
        self.on_change = on_change
        self.reserved = Reserved()
        self.running = 0
        self.queued = 0

    async def run(self, index: int, call: ToolCall, notes: list[str]) -> tuple[ToolResult, NewMessage]:
        """Runs one `delegate` call; whatever stops it before the child starts is its result."""
        policy = self.input.agents
        assert policy is not None, "a run without agents has no delegate tool"
        self.queued += 1  # counted before any wait, so the step's calls share what is left
        try:
            try:
                child = await self._child_input(policy, call)
            except ValueError as refused:
                return tool_message(call, ToolResult(exit_code=126, stderr=str(refused)))
            # The first wait also lets the step's other calls be counted before any is carved.
            await workflow.wait_condition(lambda: self.running < policy.max_children)
            # Waiters freed together take the free places one by one.
            while self.running >= policy.max_children:
                await workflow.wait_condition(lambda: self.running < policy.max_children)
        finally:
            self.queued -= 1
        try:
            carved = carve(child.budget, left(self.state.budget, self._spent(), self.reserved.held),
                           sharing=self.queued + 1)
        except NothingToCarve as nothing:
            return tool_message(call, ToolResult(exit_code=126, stderr=str(nothing)))
        child = child.model_copy(update={"budget": carved})
        child_id = f"{workflow.info().workflow_id}.delegate-{self.state.step}-{index}"
        self.running += 1
        self.reserved.hold(carved)
        try:
            result = await self._child(child_id, child)
        finally:
            self.running -= 1
            self.reserved.release(carved)
            if self.state.children_waiting.pop(child_id, None):
                self.on_change()
        self.state.usage, self.state.delegated_steps = charged(
            self.state.usage, self.state.delegated_steps, result.usage,
            result.steps + result.delegated_steps)
        self.state.egress_bytes += result.egress_bytes
        self.on_change()  # the charge shows at once, not when the step ends
        notes.append(f"delegate: {child_id} {result.status} after {result.steps} steps, "
                     f"{result.usage.total_tokens} tokens")
        return await self._stored(call, answer(result, self.input.sandbox.output_limit_bytes))

    async def _stored(self, call: ToolCall, result: ToolResult) -> tuple[ToolResult, NewMessage]:
        """The answer as a stored tool message, named by digest: history holds it once, in the
        child's completion (inline, should the store fail)."""
        result, inline = tool_message(call, result)
        assert inline.message is not None
        try:
            ref = await workflow.execute_local_activity(
                STORE_TOOL_MESSAGE, inline.message, result_type=str, start_to_close_timeout=READ_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3), summary="store the sub-agent's answer")
        except ActivityError:
            return result, inline
        return cap_result(result), NewMessage(ref=ref)

    async def _child(self, child_id: str, child: AgentRunInput) -> AgentRunResult:
        """The child's result; one that failed is charged all of its budget, as what it
        spent is not known."""
        try:
            try:
                return await workflow.execute_child_workflow(
                    AGENT_RUN, args=[child.model_dump(mode="json")], id=child_id,
                    task_queue=workflow.info().task_queue, result_type=AgentRunResult,
                    # Whatever ends the parent ends its children; its cancel path waits for them.
                    parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                    # A child that ran already under this id is never run again: attached to.
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    static_summary=f"sub-agent of step {self.state.step}: {child.task[:120]}",
                )
            except WorkflowAlreadyStartedError:
                return await self._attach(child_id, child)
        except (ChildWorkflowError, ActivityError) as error:
            # Refused at its start, it spent nothing; failed later, it may have spent all.
            budget = Budget(max_steps=None, max_seconds=None) if refused_at_start(error) else child.budget
            return AgentRunResult(
                status="failed", stop_reason=f"the sub-agent {child_id} failed: {root_message(error)}",
                steps=budget.max_steps or 0, seconds=0,
                usage=Usage(input_tokens=budget.max_tokens or 0, cost_usd=budget.max_cost_usd or 0.0),
                egress_bytes=int((budget.max_egress_mb or 0) * MB))

    async def _attach(self, child_id: str, child: AgentRunInput) -> AgentRunResult:
        """Waits on a child found already started under its id (a parent reset past its
        start, say), rather than starting a second; cancelling the step cancels it too."""
        try:
            return await workflow.execute_activity(
                AWAIT_CHILD, AwaitChildInput(workflow_id=child_id), result_type=AgentRunResult,
                start_to_close_timeout=timedelta(seconds=child.budget.max_seconds or LONGEST_SECONDS),
                heartbeat_timeout=ATTACHED_HEARTBEAT, summary=f"wait for sub-agent {child_id}")
        except asyncio.CancelledError:
            await workflow.get_external_workflow_handle(child_id).cancel()
            raise

    async def _child_input(self, policy: AgentsPolicy, call: ToolCall) -> AgentRunInput:
        if policy.depth >= policy.max_depth:
            raise ValueError(f"this run is a sub-agent at depth {policy.depth} of max_depth "
                             f"{policy.max_depth}: it may not delegate further; do the task yourself")
        try:
            asked = DelegateArguments.model_validate(await self._whole_arguments(call))
        except ValidationError as error:
            raise ValueError(f"invalid delegate arguments: {problems(error)}") from None
        return child_input(self.input, self.state.models, asked, policy)

    async def _whole_arguments(self, call: ToolCall) -> dict[str, Any]:
        """The call's arguments whole: history holds a string over 2,000 characters cut, and
        a sub-agent's task is often longer. Read from the model's stored message, then."""
        if cap_arguments(call.arguments) == call.arguments or self.state.head is None:
            return call.arguments
        try:
            return await workflow.execute_local_activity(  # type: ignore[no-any-return]
                DELEGATE_ARGUMENTS, DelegateArgumentsInput(assistant_ref=self.state.head, call=call),
                result_type=dict, start_to_close_timeout=READ_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3), summary="read delegate's arguments")
        except ActivityError as error:
            raise ValueError(f"delegate's arguments could not be read whole: {root_message(error)}") from None

    def _spent(self) -> Spent:
        state = self.state
        return Spent(steps=state.step + state.delegated_steps, usage=state.usage,
                     seconds=(workflow.now() - state.started_at).total_seconds(),
                     egress_bytes=state.egress_bytes)


def child_input(parent: AgentRunInput, models: list[ModelSpec], asked: DelegateArguments,
                policy: AgentsPolicy) -> AgentRunInput:
    """The child's input: what it asked for over its parent's, never more than the parent
    may do. Raises ValueError, in one line the model can act on."""
    try:
        model = ModelSpec.model_validate(asked.model) if asked.model is not None else None
        sandbox = SandboxSpec.model_validate({**parent.sandbox.model_dump(), **asked.sandbox})
        approval = ApprovalPolicy.model_validate({**parent.approval.model_dump(), **asked.approval})
        # A child is charged to its parent's account, whatever the call says.
        budget = Budget.model_validate({**asked.budget, "account": parent.budget.account})
    except ValidationError as error:
        raise ValueError(f"invalid delegate arguments: {problems(error)}") from None
    tools = parent.tools if asked.tools is None else asked.tools
    foreign = [name for name in tools if name not in parent.tools]
    if foreign:
        raise ValueError(f"a sub-agent may have only this run's tools ({', '.join(parent.tools)}), "
                         f"not {', '.join(foreign)}")
    widened = [name for name in NARROWED if getattr(sandbox, name) > getattr(parent.sandbox, name)]
    widened += [name for name in KEPT if getattr(sandbox, name) != getattr(parent.sandbox, name)]
    if sandbox.network != "none" and sandbox.network != parent.sandbox.network:
        widened.append("network")
    if widened:
        raise ValueError(f"a sub-agent's sandbox may only narrow this run's: {', '.join(widened)} "
                         "would widen it")
    # The parent's approvals bind its children too: delegating is no way around them.
    approval = approval.model_copy(update={"tools": list(dict.fromkeys(
        [*parent.approval.tools, *approval.tools]))})
    return AgentRunInput(
        task=asked.task, model=model or models[0],
        fallback_models=[] if model is not None else models[1:],
        tools=tools, budget=budget, sandbox=sandbox, approval=approval,
        mcp_servers=parent.mcp_servers,
        continue_as_new_after_steps=parent.continue_as_new_after_steps,
        system_prompt=asked.system_prompt or parent.system_prompt,
        agents=policy.model_copy(update={"depth": policy.depth + 1}),
    )


def refused_at_start(error: ChildWorkflowError | ActivityError) -> bool:
    """Whether the child failed before its first model call: its input, or a tool, endpoint
    or MCP server the worker lacks (`run_start.py`'s failures)."""
    return isinstance(error.cause, ApplicationError) and error.cause.type in REFUSED_AT_START


def answer(result: AgentRunResult, limit: int) -> ToolResult:
    """The child's final answer as the call's result, or why it stopped, capped like a
    sandbox tool's output."""
    output = result.output or ""
    raw = output.encode()
    truncated = len(raw) > limit
    if truncated:
        output = raw[:limit].decode(errors="ignore")
    if result.status == "completed":
        return ToolResult(exit_code=0, stdout=output, truncated=truncated)
    return ToolResult(exit_code=1, stdout=output, truncated=truncated,
                      stderr=f"the sub-agent stopped, {result.status}: {result.stop_reason}")


def tool_message(call: ToolCall, result: ToolResult) -> tuple[ToolResult, NewMessage]:
    message = Message(role="tool", name=call.name, tool_call_id=call.id,
                      content=result.model_dump_json())
    return result, NewMessage(message=message)


def problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                     for e in error.errors())


class ParentLink:
    """What a sub-agent tells its parent: its calls (and its own children's) waiting for a
    person, whenever they change, so the parent's status shows them with their commands."""

    def __init__(self, input: AgentRunInput | None) -> None:
        parent = workflow.info().parent
        self.parent_id = (parent.workflow_id if parent is not None and input is not None
                          and input.agents is not None and input.agents.depth > 0 else None)
        self.told: list[ChildWaiting] = []
        self.sending: set[asyncio.Future[None]] = set()

    def tell(self, state: RunState) -> None:
        if self.parent_id is None:
            return
        waiting = waiting_of(workflow.info().workflow_id, state)
        if waiting == self.told or not workflow.patched(TELL_PARENT_PATCH):
            return
        self.told = waiting
        sending = asyncio.ensure_future(self._signal(waiting))
        self.sending.add(sending)
        sending.add_done_callback(self.sending.discard)

    async def _signal(self, waiting: list[ChildWaiting]) -> None:
        assert self.parent_id is not None
        try:
            await workflow.get_external_workflow_handle(self.parent_id).signal(
                SIGNAL_CHILD_WAITING, args=[workflow.info().workflow_id,
                                            [w.model_dump(mode="json") for w in waiting]])
        except Exception:  # a parent already gone has nothing left to show
            workflow.logger.info("the parent %s did not take the waiting calls", self.parent_id)


def waiting_of(workflow_id: str, state: RunState) -> list[ChildWaiting]:
    """The run's own waiting calls, then its descendants'."""
    own = [ChildWaiting(workflow_id=workflow_id, call_id=wait.request.call_id,
                        tool=wait.request.tool, arguments_digest=wait.request.arguments_digest)
           for wait in state.approvals.values()]
    return [*own, *descendants_waiting(state)]


def descendants_waiting(state: RunState) -> list[ChildWaiting]:
    return [w for waiting in state.children_waiting.values() for w in waiting]


def heard_from_child(state: RunState, child_id: str, waiting: list[Any]) -> None:
    """A child's waiting calls, as it told them: none drops its entry."""
    if waiting:
        state.children_waiting[child_id] = [ChildWaiting.model_validate(w) for w in waiting]
    else:
        state.children_waiting.pop(child_id, None)
