"""Commands that change a live run: approve (or deny), cancel, message and extend, each one
call of `tether.client`. What the run answers is printed as it is; an update the run refuses
is one line naming the update and the run's reason."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text
from temporalio.client import Client
from tether import client
from tether.cli.app import app
from tether.cli.calls import call, connect
from tether.cli.context import given
from tether.cli.errors import cause, fail
from tether.cli.render import console, literal
from tether.contracts.names import UPDATE_APPROVE, UPDATE_CANCEL, UPDATE_EXTEND_BUDGET, UPDATE_SEND_MESSAGE

T = TypeVar("T")

EXTEND_FLAGS = {"max_steps": "--steps", "max_tokens": "--tokens", "max_cost_usd": "--cost-usd",
                "max_seconds": "--seconds"}


def steer(workflow_id: str, update: str, send: Callable[[Client], Coroutine[Any, Any, T]], *,
          reword: Callable[[str], str] = str) -> T:
    """Connects, sends one update with `send`, and returns the run's answer; a refusal is a
    clear error, its reason passed through `reword` (to name what the person typed)."""

    async def go() -> T:
        return await send(await connect())

    return call(go, lambda error: (f"{update} refused: {reword(cause(error))}",
                                   f"check the run: tether status {workflow_id}"))


@app.command()
def approve(
    workflow_id: str,
    call_id: Annotated[str, typer.Argument(help="The call's id, as `tether status` shows it.")],
    deny: Annotated[bool, typer.Option("--deny", help="Deny the call instead.")] = False,
    reason: Annotated[str | None, typer.Option()] = None,
    digest: Annotated[str | None, typer.Option(
        help="The arguments' digest as `tether status` prints it: the run refuses the "
             "approval unless those are exactly the arguments that would run.")] = None,
) -> None:
    """Approve (or --deny) a tool call that is waiting for a person."""
    answer = steer(workflow_id, UPDATE_APPROVE, lambda connection: client.approve(
        connection, workflow_id, call_id, approved=not deny, reason=reason, digest=digest or None))
    console.print(literal(answer), soft_wrap=True)


@app.command()
def cancel(
    workflow_id: str,
    reason: Annotated[str, typer.Option()] = "cancelled from the tether CLI",
) -> None:
    """Stop a run: the step in flight is interrupted and its sandbox removed."""
    answer = steer(workflow_id, UPDATE_CANCEL,
                   lambda connection: client.cancel(connection, workflow_id, reason))
    console.print(literal(answer), soft_wrap=True)


@app.command()
def message(workflow_id: str, text: str) -> None:
    """Add a person's message to the conversation; the model sees it at its next step."""
    answer = steer(workflow_id, UPDATE_SEND_MESSAGE,
                   lambda connection: client.send_message(connection, workflow_id, text))
    console.print(literal(answer), soft_wrap=True)


@app.command()
def extend(
    workflow_id: str,
    steps: Annotated[int | None, typer.Option()] = None,
    tokens: Annotated[int | None, typer.Option()] = None,
    cost_usd: Annotated[float | None, typer.Option()] = None,
    seconds: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Raise a run's budget by the given amounts (a limit that is unlimited stays so)."""
    more = given(max_steps=steps, max_tokens=tokens, max_cost_usd=cost_usd, max_seconds=seconds)
    if not more:
        fail("name a limit to raise", "for example: tether extend RUN --steps 10 "
                                      "(also --tokens, --cost-usd, --seconds)")

    def reword(reason: str) -> str:
        for field, flag in EXTEND_FLAGS.items():
            reason = reason.replace(field, flag)
        return reason

    limits = steer(workflow_id, UPDATE_EXTEND_BUDGET,
                   lambda connection: client.extend(connection, workflow_id, **more), reword=reword)
    for field, amount in more.items():
        now = limits.get(field)
        line = Text(f"{EXTEND_FLAGS[field]} {amount:g}: ", "bold")
        if now is None:
            line.append("this limit is unlimited already; nothing changed", "yellow")
        else:
            line.append(f"raised to {now:g}", "green")
        console.print(line)
