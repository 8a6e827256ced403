"""The run's start: its task stored, and its MCP servers' tools listed.

A run refused here (a tool, an endpoint or a key the worker lacks) fails at once, never
retried: nothing the run could do later would make it start.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from tether.contracts import (
    AgentRunInput,
    ForkOrigin,
    Message,
    NewMessage,
    StartConversationInput,
    StartConversationOutput,
)
from tether.contracts.activities import MCP_LIST_TOOLS, START_CONVERSATION
from tether.contracts.agents import DELEGATE
from tether.contracts.tools import McpListInput, McpListOutput
from tether.workflows.failures import host_gone, root_message, sandbox_lost
from tether.workflows.options import ActivityOptions
from tether.workflows.sandbox_lease import SandboxLease
from tether.workflows.state import RunState

LIST_AGAIN_PATCH = "mcp-listing-again-in-a-new-sandbox"
REFUSED_ENDPOINTS_PATCH = "refused-endpoints-are-invalid-input"


async def start_conversation(state: RunState, run: AgentRunInput, options: ActivityOptions) -> None:
    try:
        # A local activity: its input (the task, and any script) is already in history
        # as the run's input, and a local activity's input is not recorded again.
        started = await workflow.execute_local_activity(
            START_CONVERSATION,
            StartConversationInput(
                system_prompt=run.system_prompt, task=run.task,
                models=[run.model, *run.fallback_models],
                max_cost_usd=run.budget.max_cost_usd, tools=run.tools,
                files=run.files, disk_mb=run.sandbox.disk_mb,
                mcp_servers=run.mcp_servers,
                runtime_tools=[DELEGATE] if run.agents is not None else [],
                secrets=[] if run.sandbox.network == "none" else run.sandbox.network.secrets or []),
            result_type=StartConversationOutput,
            start_to_close_timeout=options.start_timeout,
            retry_policy=options.start_retry,
            summary="store the task",
        )
    except ActivityError as error:
        # A run that can't start (a cost budget nobody can count) fails with the reason;
        # one whose input gives a URL or a key variable the worker did not configure fails
        # as any invalid input does.
        kind = "RunRefused"
        if invalid_input(error) and workflow.patched(REFUSED_ENDPOINTS_PATCH):
            kind = "InvalidInput"
        raise ApplicationError(root_message(error), type=kind,
                               non_retryable=True) from None
    state.head, state.models = started.head, started.models
    state.toolset, state.routes = started.toolset, started.routes
    state.phase = "thinking"
    if run.fork is not None:
        inherit(state, run.fork)


def inherit(state: RunState, fork: ForkOrigin) -> None:
    """A fork goes on from where its origin's step `at_step` ended: that conversation and
    workspace, by digest, and its steps numbered on from there. No command: nothing of the
    inherited steps runs again."""
    state.head, state.snapshot = fork.head, fork.snapshot
    state.step = state.continued_at_step = fork.at_step
    for record in fork.steps:
        state.record(record.model_copy(update={"inherited": True}))
    if fork.message is not None:
        state.inbox.append(NewMessage(message=Message(role="user", content=fork.message)))
        state.from_people.append(fork.message)


async def list_mcp_tools(state: RunState, run: AgentRunInput, lease: SandboxLease,
                         options: ActivityOptions) -> None:
    """Lists the run's MCP servers' tools once, at its start, and adds them to its tools;
    a server that runs in the sandbox is started there to be asked (again in a new
    sandbox when that one is lost first, as a tool call is)."""
    in_sandbox = any(server.command for server in run.mcp_servers)
    for attempt in range(2):
        sandbox = await lease.get() if in_sandbox else None
        try:
            listed = await workflow.execute_activity(
                MCP_LIST_TOOLS,
                McpListInput(toolset=state.toolset or "", servers=run.mcp_servers,
                             container_id=sandbox.container_id if sandbox else None,
                             started_at=sandbox.started_at if sandbox else None),
                result_type=McpListOutput,
                task_queue=sandbox.task_queue if sandbox else None,
                start_to_close_timeout=options.mcp_list_timeout,
                schedule_to_start_timeout=(
                    options.host_wait(sandbox.host_wait_seconds) if sandbox else None),
                retry_policy=options.mcp_list_retry,
                summary="list MCP tools",
            )
        except ActivityError as error:
            if (sandbox is not None and attempt == 0 and sandbox_lost(error)
                    and workflow.patched(LIST_AGAIN_PATCH)):
                state.last_error = (f"sandbox on {sandbox.worker} lost ({root_message(error)}); "
                                    "listing the MCP servers' tools again in a new sandbox")
                lease.lose(sandbox, host_answered=not host_gone(error))
                continue
            raise ApplicationError(f"the run's MCP servers could not be listed: {root_message(error)}",
                                   type="RunRefused", non_retryable=True) from None
        state.toolset, state.routes = listed.toolset, listed.routes
        return


def invalid_input(error: ActivityError) -> bool:
    """Whether the activity refused what the run's input asks for."""
    return isinstance(error.cause, ApplicationError) and error.cause.type == "InvalidInput"
