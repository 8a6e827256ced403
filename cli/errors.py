"""How a command fails: one line, `error: what went wrong`, with what to do on the next, and
exit code 2; never a traceback. The wording for the failures every command can meet (no
Temporal server, no worker, no keys for an encrypted run) lives here."""

from __future__ import annotations

from typing import NoReturn

import typer
from temporalio.service import RPCError, RPCStatusCode
from tether.cli.context import settings
from tether.cli.render import print_error
from tether.client import NoWorker
from tether.embedded import temporal as embedded
from tether.encryption import DecryptionError
from tether.encryption.codec import ENCODING, UNDECODABLE

UNREACHABLE_HINT = ("check that it runs: start one with `tether server` (or `tether dev`), "
                    "or set TEMPORAL_ADDRESS to the address of one")


def fail(message: str, hint: str | None = None) -> NoReturn:
    """Prints an error and leaves with code 2. The message and hint are printed literally:
    they often carry what a run produced (a reason, a call id, a tool's error)."""
    print_error(message, hint)
    raise typer.Exit(2)


def cause(error: BaseException) -> str:
    """What went wrong at the bottom of a chain of errors."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error)


def unreachable(error: BaseException) -> None:
    """Fails with one line, exit code 2, when `error` (or what caused it) is the Temporal
    server being unreachable: at connection, or lost in the middle of a command."""
    needs_keys(error)
    address = settings().temporal_address
    seen: BaseException | None = error
    for _ in range(20):  # a chain of causes; never a cycle's endless walk
        if seen is None:
            return
        if isinstance(seen, ConnectionError) and "Temporal server at" in str(seen):
            fail(f"{seen} — {UNREACHABLE_HINT}")  # from tether.client.connect
        if isinstance(seen, RPCError) and seen.status == RPCStatusCode.UNAVAILABLE:
            fail(f"the Temporal server at {address} is unreachable: "
                 f"{seen.message.splitlines()[0][:200] if seen.message else 'unavailable'}"
                 f" — {UNREACHABLE_HINT}")
        if isinstance(seen, embedded.ServerUnavailable):  # `tether demo` finding its server
            fail(f"the Temporal server at {address} is unreachable — {UNREACHABLE_HINT}"
                 if "does not answer" in str(seen) else str(seen))
        seen = seen.__cause__ or seen.__context__


def needs_keys(error: BaseException) -> None:
    """Fails with one line when `error` is a run's data being encrypted with a key this
    process doesn't hold, or with no keys here at all."""
    hint = "set TETHER_ENCRYPTION_KEYS to the keys the workers use"
    bottom = error
    while bottom.__cause__ is not None and not isinstance(bottom, DecryptionError):
        bottom = bottom.__cause__
    if isinstance(bottom, DecryptionError):
        fail(str(bottom), hint)
    if settings().encryption_keys is None and f"encoding {ENCODING.decode()}" in str(bottom):
        fail("the run's data is encrypted, and this command has no keys to read it", hint)


def worker_cannot_decode(error: BaseException) -> None:
    """Fails with one line when the worker that was asked about a run can't decrypt it: the
    worker's message names the key; this command's keys are not the problem."""
    seen: BaseException | None = error
    while seen is not None and not str(seen).startswith(UNDECODABLE):
        seen = seen.__cause__
    if seen is not None:
        fail(str(seen), "give the workers the run's key: the workers' TETHER_ENCRYPTION_KEYS "
                        "must hold the key named, then restart them")


def no_worker(error: BaseException) -> None:
    """Fails with one line when no worker could answer about a run."""
    if isinstance(error, NoWorker):
        fail(str(error), "start one: `tether worker` (with the run's TETHER_TASK_QUEUE) or `tether dev`")
