"""A fork's input: another run's first N steps, by digest, and what the person changes.

The conversation after step N is the origin's own chain of nodes in the content store (its
step N's answer, and that step's tool results on top), the workspace its snapshot after
step N; nothing of steps 1 to N runs again. The origin is only read: its first execution's
input from history, its steps from its `transcript` query, its messages from the store.
Re-exported by `tether.client` as `fork_run`, which starts the run this builds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client
from tether.contracts import (
    ALL_TOOLS,
    AgentRunInput,
    ForkOrigin,
    Message,
    ModelSpec,
    StepRecord,
    ToolResult,
)
from tether.contracts.names import QUERY_TRANSCRIPT
from tether.reading import query
from tether.store import Conversations
from tether.store.conversation import Loaded

KEEP_SNAPSHOTS = 'start the runs you mean to fork with "sandbox": {"snapshots": "every_step"}'
NOT_CHANGED = ("task", "fork")
"""Input fields a fork keeps: its task is the start of the conversation it inherits."""


class ForkRefused(ValueError):
    """The run can't be forked at that step, or the changes are not an input's; says why."""


@dataclass(frozen=True)
class Origin:
    """What a fork reads of the run it forks."""

    run_id: str
    task_queue: str
    input: dict[str, Any]
    """The input its first execution started with, as given."""
    steps: list[StepRecord]
    """Its transcript: the most recent steps, at most `state.TRANSCRIPT_KEPT`."""


async def read_origin(client: Client, run_id: str) -> Origin:
    """The run's first input, from its first execution's start event (a later execution's
    carries its models by reference), and its transcript."""
    described = await client.get_workflow_handle(run_id).describe()
    first = described.raw_description.workflow_execution_info.first_run_id or described.run_id
    history = await client.get_workflow_handle(run_id, run_id=first).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [raw, *_] = await client.data_converter.decode(started.input.payloads)
    steps = await query(client, run_id, QUERY_TRANSCRIPT, result_type=list[StepRecord])
    return Origin(run_id=run_id, task_queue=described.task_queue, input=dict(raw), steps=steps)


async def fork_input(origin: Origin, at_step: int, changes: dict[str, Any],
                     conversations: Conversations) -> AgentRunInput:
    """The input of a run that goes on from `origin`'s step `at_step` with `changes`: input
    fields that replace the origin's, and `message`, a person's message to add."""
    changes = dict(changes)
    message = changes.pop("message", None)
    if message is not None and (not isinstance(message, str) or not message.strip()):
        raise ForkRefused("the fork's message must be a non-empty string")
    kept = sorted(set(changes) & set(NOT_CHANGED))
    if kept:
        raise ForkRefused(f"a fork can't change {', '.join(kept)}: it goes on from the origin's "
                          "conversation; start a new run for another task")
    record = step_record(origin, at_step)
    head = await (after_step(record, conversations) if record is not None
                  else from_chain(origin, at_step, conversations))
    loaded = await load(conversations, head)
    base = {key: value for key, value in origin.input.items() if key != "fork"}
    try:
        run = AgentRunInput.model_validate({**base, **changes})
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "input"
        raise ForkRefused(f"the fork's input is invalid: {where}: {problem['msg']}") from None
    snapshot = record.snapshot if record is not None else None
    if snapshot is None and used_workspace(run, loaded.messages):
        where = (f"step {at_step} of {origin.run_id} has no workspace snapshot" if record is not None
                 else f"step {at_step} is older than the steps {origin.run_id}'s transcript keeps, "
                      "and its snapshot with it")
        raise ForkRefused(f"{where}, so its files can't be restored in a fork: {KEEP_SNAPSHOTS}")
    if run.system_prompt != loaded.messages[0].content:
        head = await with_system_prompt(conversations, loaded, run.system_prompt)
    answers = sum(1 for m in loaded.messages if m.role == "assistant")
    return run.model_copy(update={
        **given_models(run, changes, answers),
        "fork": ForkOrigin(of=origin.run_id, at_step=at_step, head=head, snapshot=snapshot,
                           message=message,
                           steps=[step for step in origin.steps if step.step <= at_step])})


def step_record(origin: Origin, at_step: int) -> StepRecord | None:
    """The step's record in the origin's transcript; None for a step older than it keeps."""
    last = max((step.step for step in origin.steps), default=0)
    if at_step > last:
        raise ForkRefused(f"{origin.run_id} has recorded {last} step(s): fork at a step from 1 to {last}")
    return next((step for step in origin.steps if step.step == at_step), None)


async def after_step(record: StepRecord, conversations: Conversations) -> str:
    """The conversation after a step: its answer's node, and its tool results on top, stored
    as the next model call of the origin stores them (so the nodes are the same)."""
    if record.head is None:
        raise ForkRefused(f"step {record.step} has no model answer to go on from (it was "
                          "interrupted, or recorded before forks existed): fork at another step")
    if len(record.result_refs) != len(record.tool_calls):
        raise ForkRefused(f"step {record.step}'s tool calls did not all end: fork at an earlier step")
    results = []
    for call, ref, result in zip(record.tool_calls, record.result_refs, record.tool_results, strict=True):
        if ref is not None:
            results.append(Message.model_validate_json(await conversations.blobs.get_async(ref)))
        else:  # a call the runtime refused: its result is what the runtime wrote
            results.append(refused_result(call.name, call.id, result))
    return await conversations.append_async(record.head, results) or record.head


def refused_result(name: str, call_id: str, result: ToolResult) -> Message:
    return Message(role="tool", name=name, tool_call_id=call_id, content=result.model_dump_json())


async def from_chain(origin: Origin, at_step: int, conversations: Conversations) -> str:
    """A step older than the transcript: found in the store's chain by counting model answers
    back from the oldest step the transcript keeps (one answer a step: a step interrupted
    during its model call between the two would shift the count)."""
    anchor = min((s for s in origin.steps if s.head is not None), key=lambda s: s.step, default=None)
    if anchor is None or anchor.head is None:
        raise ForkRefused(f"{origin.run_id}'s transcript names no conversation to fork from")
    loaded = await load(conversations, anchor.head)
    answers = [i for i, m in enumerate(loaded.messages) if m.role == "assistant"]
    back = anchor.step - at_step
    if back >= len(answers):
        raise ForkRefused(f"step {at_step} is not in {origin.run_id}'s conversation")
    end = answers[-1 - back]
    calls = len(loaded.messages[end].tool_calls)
    tool_messages = loaded.messages[end + 1:end + 1 + calls]
    if len(tool_messages) != calls or any(m.role != "tool" for m in tool_messages):
        raise ForkRefused(f"step {at_step}'s tool results are not in the conversation: fork at another step")
    return loaded.digests[end + calls]


async def load(conversations: Conversations, head: str) -> Loaded:
    await conversations.load_async(head)
    loaded = conversations.cached(head)
    assert loaded is not None  # a load remembers the head it loaded
    return loaded


async def with_system_prompt(conversations: Conversations, loaded: Loaded, prompt: str) -> str:
    """The same conversation under another system prompt: new nodes, the same messages."""
    rest = loaded.messages[1:] if loaded.messages[0].role == "system" else loaded.messages
    head = await conversations.append_async(None, [Message(role="system", content=prompt), *rest])
    assert head is not None
    return head


def given_models(run: AgentRunInput, changes: dict[str, Any], answers: int) -> dict[str, Any]:
    """A scripted model the fork is given plays from its first turn: the inherited answers
    come before it. The origin's own script, kept, goes on where it was."""
    given: dict[str, Any] = {}
    if "model" in changes:
        given["model"] = from_first_turn(run.model, answers)
    if "fallback_models" in changes:
        given["fallback_models"] = [from_first_turn(spec, answers) for spec in run.fallback_models]
    return given


def from_first_turn(spec: ModelSpec, answers: int) -> ModelSpec:
    if spec.script is None:
        return spec
    return spec.model_copy(update={"script": spec.script.model_copy(update={"begins_after": answers})})


def used_workspace(run: AgentRunInput, messages: tuple[Message, ...]) -> bool:
    """Whether the inherited steps changed a workspace: a call of a tool that runs in the
    sandbox. Worker functions and HTTP MCP servers leave none, and the input's `files`, never
    touched, are placed in the fork's sandbox as in any run's."""
    prefixes = tuple(f"{server.name}__" for server in run.mcp_servers if server.command)
    return any(
        call.name in ALL_TOOLS or bool(prefixes and call.name.startswith(prefixes))
        for message in messages for call in message.tool_calls)
