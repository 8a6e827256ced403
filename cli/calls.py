"""How a command calls the client: connect, run the call, and turn any failure into one line
(`tether.cli.errors`) rather than a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from temporalio.client import Client
from tether import client
from tether.cli.context import settings
from tether.cli.errors import UNREACHABLE_HINT, cause, fail, no_worker, unreachable, worker_cannot_decode

T = TypeVar("T")


async def connect() -> Client:
    try:
        return await client.connect(settings())
    except ConnectionError as error:  # no Temporal server answers there
        unreachable(error)
        raise
    except Exception as error:
        fail(f"cannot connect to the Temporal server at {settings().temporal_address}: "
             f"{cause(error).splitlines()[0][:300]} — {UNREACHABLE_HINT}")


def call(go: Callable[[], Coroutine[Any, Any, T]],
         explain: Callable[[Exception], tuple[str, str | None]]) -> T:
    """Runs a command's call to Temporal. Any failure is one line, never a traceback: an
    unreachable server or a run no worker serves says so, anything else as `explain` puts it
    (what went wrong, and what to do)."""
    try:
        return asyncio.run(go())
    except typer.Exit:
        raise
    except Exception as error:
        unreachable(error)
        worker_cannot_decode(error)
        no_worker(error)
        fail(*explain(error))


def read(workflow_id: str, what: str, go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs a read of a run; a run that can't be read (no such id, a query the run refused)
    is a clear error, not a traceback."""
    return call(go, lambda error: (f"cannot read {what} of run {workflow_id}: {cause(error)}",
                                   "check the workflow id: tether list"))
