"""One model call per activity. The conversation arrives by reference, never by value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from pydantic import TypeAdapter
from temporalio import activity
from temporalio.exceptions import ApplicationError
from tether.activities.artifacts import check_files
from tether.activities.observed import observed
from tether.activities.store_errors import store_failure
from tether.contracts import (
    Message,
    ModelCallInput,
    ModelCallOutput,
    ModelSpec,
    NewMessage,
    Script,
    StartConversationInput,
    StartConversationOutput,
)
from tether.contracts.activities import MODEL_CALL, START_CONVERSATION
from tether.contracts.caps import cap_arguments
from tether.contracts.digests import arguments_digest
from tether.contracts.files import MAX_FILE_BYTES
from tether.contracts.network import BrokeredSecret
from tether.contracts.tools import BUILTIN_TOOLS, RUNTIME_TOOLS, ToolSpec
from tether.llm import Providers
from tether.llm.carriable import carriable
from tether.llm.endpoints import EndpointRefused
from tether.llm.pricing import cost_usd, price_known
from tether.llm.provider import PermanentModelError, TransientModelError
from tether.store import Conversations, StoreError
from tether.tools import FunctionTools
from tether.tools.mcp_servers import McpEndpoints, McpRefused

HEARTBEAT_EVERY_S = 2.0
STREAM_BEAT_EVERY_S = 0.5
PARTIAL_TEXT_CAP = 4000
SCRIPT_REF_PREFIX = "store:"


def secrets_note(secrets: list[BrokeredSecret]) -> str:
    """What the model is told of the run's brokered secrets: where they go, never a value, so
    it neither looks for a token in the sandbox nor asks for one."""
    if not secrets:
        return ""
    hosts = "; ".join(f"{s.host}: {s.header}" for s in secrets)
    return ("\n\nHTTPS requests from the sandbox to these hosts carry a credential the runtime's"
            f" proxy adds ({hosts}). Tools can't read it and don't need it: send requests without"
            " that header.")


class ModelActivities:
    """Starting a conversation and calling a model on it, with the store, the providers and
    the worker's function tools given."""

    def __init__(self, *, conversations: Conversations, providers: Providers,
                 functions: FunctionTools | None = None, mcp_servers: McpEndpoints | None = None,
                 brokered_env: Iterable[str] = (), max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.conversations = conversations
        self.max_file_bytes = max_file_bytes
        """The largest file a run may be given (TETHER_MAX_FILE_MB): refused at its start."""
        self.providers = providers
        self.functions = functions or FunctionTools()
        self.mcp_servers = mcp_servers or McpEndpoints()
        """The worker's MCP servers: checked at a run's start, as its models' endpoints are."""
        self.brokered_env = frozenset(brokered_env)
        """The variables runs' brokered secrets may name (the sandbox host checks again)."""

    @activity.defn(name=START_CONVERSATION)
    async def start_conversation(self, input: StartConversationInput) -> StartConversationOutput:
        self._refuse_foreign_endpoints(input)
        if input.max_cost_usd is not None:
            refuse_unpriced(input.models, self._base_url)
        specs = [*self._tool_specs(input.tools), *(RUNTIME_TOOLS[name] for name in input.runtime_tools)]
        try:
            if input.files:
                await asyncio.to_thread(check_files, self.conversations.blobs, input.files, input.disk_mb,
                                        self.max_file_bytes)
            head = await self.conversations.append_async(None, [
                Message(role="system", content=input.system_prompt + secrets_note(input.secrets)),
                Message(role="user", content=input.task),
            ])
            models = [await self._script_by_reference(spec) for spec in input.models]
            toolset = await self.conversations.blobs.put_async(
                TypeAdapter(list[ToolSpec]).dump_json(specs, exclude_defaults=True))
        except StoreError as error:
            raise store_failure(error) from None
        assert head is not None
        return StartConversationOutput(head=head, models=models, toolset=toolset,
                                       routes={spec.name: spec.route() for spec in specs})

    def _refuse_foreign_endpoints(self, input: StartConversationInput) -> None:
        """A URL or a key variable the worker did not configure refuses the run before any
        request leaves a worker (the model and MCP activities check again, at each request)."""
        problems = []
        for spec in input.models:
            try:
                self._base_url(spec)
            except EndpointRefused as refused:
                problems.append(str(refused))
        for server in input.mcp_servers:
            try:
                self.mcp_servers.resolve(server)
            except McpRefused as refused:
                problems.append(str(refused))
        problems += [f"sandbox.network.secrets names {env}, which this worker does not broker: list it"
                     " in the worker's TETHER_BROKERED_ENV (comma-separated), or drop the secret"
                     for env in dict.fromkeys(s.env for s in input.secrets) if env not in self.brokered_env]
        if problems:
            raise ApplicationError("; ".join(problems), type="InvalidInput", non_retryable=True)

    def _base_url(self, spec: ModelSpec) -> str | None:
        """Where the spec's calls go, as this worker's endpoints say; None for the scripted model."""
        if spec.provider == "scripted":
            return None
        return self.providers.options.endpoints.route(spec).base_url

    def _tool_specs(self, names: list[str]) -> list[ToolSpec]:
        """The run's tools, as this worker knows them; an unknown name refuses the run."""
        specs, unknown = [], []
        for name in names:
            function = self.functions.get(name)
            spec = BUILTIN_TOOLS.get(name) or (function.spec if function else None)
            if spec is None:
                unknown.append(name)
            else:
                specs.append(spec)
        if unknown:
            available = [*BUILTIN_TOOLS, *self.functions.names()]
            raise ApplicationError(
                f"unknown tool(s) {', '.join(map(repr, unknown))}; this worker has: "
                f"{', '.join(available)} (function tools come from the worker's TETHER_TOOLS)",
                type="UnknownTool", non_retryable=True)
        return specs

    @activity.defn(name=MODEL_CALL)
    async def call_model(self, input: ModelCallInput) -> ModelCallOutput:
        conversations = self.conversations
        try:
            # Every read at once: the conversation (cached on this worker, or read BATCH
            # nodes a round trip), the new messages stored by reference, the script, the tools.
            earlier, new, spec, tools = await asyncio.gather(
                conversations.load_async(input.head or None),
                asyncio.gather(*(self._resolve(item) for item in input.append)),
                self._script_from_reference(input.model), self._offered(input))
            head = await conversations.append_async(input.head or None, new) or input.head
        except StoreError as error:
            raise store_failure(error) from None
        messages = [*earlier, *new]
        try:
            base_url = self._base_url(spec)
        except EndpointRefused as refused:
            # A worker configured unlike the one that started the run sends nothing either.
            raise ApplicationError(str(refused), type="InvalidInput", non_retryable=True) from None

        provider = self.providers.get(spec.provider)
        # The label people read: a script passed by reference would show as "scripted:store:<digest>".
        progress = Progress(input.step, "scripted" if spec.provider == "scripted" else spec.label)
        call = asyncio.ensure_future(observed(
            provider.complete(spec, messages, tools, on_text=progress.on_text),
            spec, conversation_id=input.workflow_id, step=input.step, messages=messages,
            base_url=base_url))
        try:
            while True:
                done, _ = await asyncio.wait({call}, timeout=HEARTBEAT_EVERY_S)
                if done:
                    break
                progress.beat()
            turn = carriable(call.result(), step=input.step)
        except PermanentModelError as error:
            # The provider's message already names the model and endpoint.
            raise ApplicationError(str(error), type="ModelPermanentError", non_retryable=True) from None
        except TransientModelError as error:
            delay = timedelta(seconds=error.retry_after) if error.retry_after else None
            raise ApplicationError(str(error), type="ModelTransientError", next_retry_delay=delay) from None
        finally:
            call.cancel()

        price = cost_usd(spec, turn.usage, base_url=base_url)
        usage = turn.usage.model_copy(update={"cost_usd": price or 0.0})
        assistant = Message(role="assistant", content=turn.text, tool_calls=turn.tool_calls)
        try:
            new_head = await conversations.append_async(head, [assistant]) or head
        except StoreError as error:
            raise store_failure(error) from None
        # History gets the calls with long arguments capped (a whole file to write, say); the
        # tool activity reads the full arguments from the stored assistant message.
        capped = [call.model_copy(update={"arguments": cap_arguments(call.arguments)})
                  for call in turn.tool_calls]
        # Of the arguments as stored (their JSON form), which the tool activity runs and a
        # person approving reads back: the digest an approval names.
        digests = [arguments_digest(call.model_dump(mode="json")["arguments"])
                   for call in turn.tool_calls]
        return ModelCallOutput(
            head=new_head, text=turn.text, tool_calls=capped, usage=usage,
            cost_known=price is not None, argument_digests=digests,
        )

    async def _script_by_reference(self, spec: ModelSpec) -> ModelSpec:
        if spec.script is None:
            return spec
        digest = await self.conversations.blobs.put_async(spec.script.model_dump_json().encode())
        return spec.model_copy(update={"script": None, "name": SCRIPT_REF_PREFIX + digest})

    async def _script_from_reference(self, spec: ModelSpec) -> ModelSpec:
        if spec.provider != "scripted" or not spec.name.startswith(SCRIPT_REF_PREFIX):
            return spec
        raw = await self.conversations.blobs.get_async(spec.name.removeprefix(SCRIPT_REF_PREFIX))
        return spec.model_copy(update={"script": Script.model_validate_json(raw)})

    async def _offered(self, input: ModelCallInput) -> list[ToolSpec]:
        """The specs of the tools the model may call now, from the run's stored toolset."""
        if input.toolset is None:  # a run started before toolsets: built-in tools only
            return [BUILTIN_TOOLS[name] for name in input.tools if name in BUILTIN_TOOLS]
        stored = await self.conversations.blobs.get_async(input.toolset)
        specs = TypeAdapter(list[ToolSpec]).validate_json(stored)
        return [spec for spec in specs if spec.name in input.tools]

    async def _resolve(self, item: NewMessage) -> Message:
        if item.message is not None:
            return item.message
        if item.ref is None:
            raise ApplicationError("a new message has neither ref nor message", non_retryable=True)
        return Message.model_validate_json(await self.conversations.blobs.get_async(item.ref))


def refuse_unpriced(models: list[ModelSpec], base_url: Callable[[ModelSpec], str | None]) -> None:
    """A cost budget can't be enforced on a model whose price nobody knows: say so at start,
    not after the money is spent."""
    unknown = [spec.label for spec in models if not price_known(spec, base_url=base_url(spec))]
    if unknown:
        raise ApplicationError(
            f"max_cost_usd can't be enforced: no known price for {', '.join(unknown)}; give "
            "each such model a price ({'price': {'input_per_mtok_usd': ..., "
            "'output_per_mtok_usd': ...}}) or drop max_cost_usd",
            type="CostUnknown", non_retryable=True,
        )


class Progress:
    """Heartbeats a model call, with the streamed text so far in the details: a person can
    watch a long call in the Web UI's pending activity or `tether status`, and the partial
    text never enters the event history (only the last heartbeat is kept, and not in it)."""

    def __init__(self, step: int, model: str) -> None:
        self.step, self.model = step, model
        self.text = ""
        self.last_beat = 0.0

    def on_text(self, text: str) -> None:
        self.text = text
        if time.monotonic() - self.last_beat >= STREAM_BEAT_EVERY_S:
            self.beat()

    def beat(self) -> None:
        self.last_beat = time.monotonic()
        details: dict[str, object] = {"step": self.step, "model": self.model}
        if self.text:
            details["partial_text"] = self.text[-PARTIAL_TEXT_CAP:]
        activity.heartbeat(details)
