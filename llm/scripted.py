"""The scripted model: plays a fixed list of turns. Tests, demos and benchmarks use it.

It is an honest stand-in for a model: the run still executes every tool call for real, and
the script only decides what the "model" asks for. Turn N is served when the conversation
holds N-1 assistant messages, so a retried or resumed step gets the same turn.

A turn's text may contain `{{last_output}}`: the stdout of the most recent tool result,
so a script can answer with what its tools computed, as a model reading them would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from tether.contracts import Message, ModelSpec, ModelTurn, ToolCall, ToolSpec, Usage
from tether.llm.provider import PermanentModelError

CHARS_PER_TOKEN = 4
LAST_OUTPUT = "{{last_output}}"


def approximate_tokens(text: str) -> int:
    """A rough token count (about four characters a token), so budgets are testable."""
    return max(1, len(text) // CHARS_PER_TOKEN)


class ScriptedProvider:
    async def complete(
        self,
        spec: ModelSpec,
        messages: list[Message],
        tools: list[ToolSpec],
        *,
        on_text: Callable[[str], None] | None = None,  # a script's turn arrives whole
    ) -> ModelTurn:
        if spec.script is None:
            raise PermanentModelError("scripted model has no script")
        # A fork's inherited answers come before the script's first turn.
        index = max(0, sum(1 for m in messages if m.role == "assistant") - spec.script.begins_after)
        turns = spec.script.turns
        if index >= len(turns):
            raise PermanentModelError(
                f"the script has {len(turns)} turn(s) and the run asked for turn {index + 1}; "
                "end the script with a turn that has no tool_calls"
            )
        turn = turns[index]
        if turn.delay_seconds:
            await asyncio.sleep(turn.delay_seconds)
        text = turn.text
        if text and LAST_OUTPUT in text:
            text = text.replace(LAST_OUTPUT, _last_tool_stdout(messages))
        calls = [
            ToolCall(id=call.id or f"call_{index}_{n}", name=call.name, arguments=call.arguments)
            for n, call in enumerate(turn.tool_calls)
        ] if tools else []
        usage = turn.usage or Usage(
            input_tokens=sum(approximate_tokens(_text_of(m)) for m in messages),
            output_tokens=approximate_tokens(
                (text or "") + json.dumps([c.arguments for c in calls])
            ),
        )
        return ModelTurn(text=text, tool_calls=calls, usage=usage)


def _text_of(message: Message) -> str:
    parts = [message.content or ""]
    parts += [json.dumps(c.arguments) for c in message.tool_calls]
    return "".join(parts)


def _last_tool_stdout(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "tool" and message.content:
            try:
                return str(json.loads(message.content).get("stdout", "")).strip()
            except (ValueError, AttributeError):
                return message.content.strip()
    return ""
