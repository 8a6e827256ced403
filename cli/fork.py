"""`tether fork`: a new run that goes on from a step of another, one call of `tether.client`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from tether import client
from tether.cli.app import app
from tether.cli.calls import call, connect
from tether.cli.context import settings
from tether.cli.errors import cause
from tether.cli.render import console, literal
from tether.cli.runs import read_input_file


@app.command()
def fork(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run to fork, running or closed.")],
    at_step: Annotated[int, typer.Option(
        "--at-step", min=1, help="The fork inherits steps 1 to N: their conversation and workspace.")],
    workflow_id: Annotated[str | None, typer.Option(
        "--workflow-id", help="The fork's workflow id (default: RUN-fork-<random>).")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input-file", metavar="F",
        help='JSON fields replacing the run\'s input ("model", "system_prompt", "budget", ...) '
             'and "message", a message to add.')] = None,
) -> None:
    """Start a new run from RUN's first N steps, by digest: nothing of them runs again, and
    its workspace is RUN's snapshot after step N. Prints the fork's workflow id."""
    changes = read_input_file(input_file) if input_file else {}

    async def go() -> str:
        handle = await client.fork_run(await connect(), run_id, at_step=at_step, changes=changes,
                                       workflow_id=workflow_id, settings=settings())
        return handle.id

    def explain(error: Exception) -> tuple[str, str | None]:
        if isinstance(error, client.ForkRefused):
            return f"cannot fork {run_id} at step {at_step}: {error}", None
        return f"cannot fork {run_id}: {cause(error)}", "check the run: tether status " + run_id

    console.print(literal(call(go, explain)), soft_wrap=True)
