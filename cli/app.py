"""The `tether` command itself: the Typer app every command module adds its commands to,
the options before any command, and `main`, the entry point."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

app = typer.Typer(help="tether: durable, sandboxed, budgeted AI agent runs on Temporal.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


@app.callback()
def _options(
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="NAME", envvar="TEMPORAL_PROFILE",
        help="The profile of Temporal's client config file (TEMPORAL_CONFIG_FILE) to connect with.")] = None,
) -> None:
    # The same as TEMPORAL_PROFILE, as in the Temporal CLI: set for this process and what it
    # starts (`tether dev`'s worker), where TetherSettings and temporalio.envconfig read it.
    if profile:
        os.environ["TEMPORAL_PROFILE"] = profile


def main() -> None:
    """Runs the CLI, then leaves without interpreter teardown: the Temporal client's Rust
    threads can abort a finishing interpreter ("PyGILState_Release ... finalizing",
    temporalio/sdk-python#300), which would turn a finished command into exit code 134."""
    code: int | str | None = 0
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    os._exit(code or 0)
