"""Commands for the encryption keys: `tether keygen` makes one, `tether store rekey` moves
the conversation store onto the current one so an old key can be retired."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from tether.cli.app import app
from tether.cli.context import settings
from tether.cli.errors import fail
from tether.cli.render import console, err, literal
from tether.encryption import InvalidKeys, KeyRing
from tether.store.backends import ObjectBlobs, open_blobs
from tether.store.errors import StoreError
from tether.store.rekey import RekeyCounts, rekey


@app.command()
def keygen(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The new key's id, such as 2025-06.")],
) -> None:
    """Print a new AES-256 key as `ID:BASE64`, for TETHER_ENCRYPTION_KEYS (put it first to
    encrypt with it; keep the old keys after it while anything they encrypted is read)."""
    try:
        print(KeyRing.generate(key_id))
    except InvalidKeys as error:
        fail(str(error))


store_app = typer.Typer(help="The conversation store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("rekey")
def store_rekey(
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Re-encrypt every blob of the conversation store that is not under the current key (the
    first of TETHER_ENCRYPTION_KEYS), so an old key can be removed. Safe while workers run;
    stopped anywhere, it leaves every blob readable, and running it again finishes the job."""
    keys = settings().key_ring
    if keys is None:
        fail("store rekey needs TETHER_ENCRYPTION_KEYS: the new key first, the old ones after it",
             "set it as on the workers, once every worker has the new key in front")
    again = "blobs done stay done: run `tether store rekey` again to finish"
    blobs = open_blobs(settings().store_location)
    try:
        counts = rekey(blobs, keys) if as_json else _rekey_shown(blobs, keys)
    except StoreError as error:
        fail(str(error), again)
    except KeyboardInterrupt:
        fail("stopped", again)
    if as_json:
        print(json.dumps({"store": blobs.where, "key": keys.primary, "blobs": counts.blobs,
                          "rekeyed": counts.rekeyed, "current": counts.current,
                          "unreadable": [{"digest": d, "error": e} for d, e in counts.unreadable]}))
    else:
        console.print(Text("✓ ", "green") + literal(
            f"{counts.rekeyed} blobs of {blobs.where} rewritten under key '{keys.primary}' · "
            f"{counts.current} were under it already"), soft_wrap=True)
        for digest, problem in counts.unreadable:
            err.print(Text("✗ ", "red") + literal(f"blob {digest[:12]}: {problem}"), soft_wrap=True)
    if counts.unreadable:
        if not as_json:
            err.print(literal(f"{len(counts.unreadable)} blobs could not be opened and were left as "
                              "they are: keep the keys they need, or restore them"), soft_wrap=True)
        raise typer.Exit(1)


def _rekey_shown(blobs: ObjectBlobs, keys: KeyRing) -> RekeyCounts:
    """rekey, with a bar: the blobs are listed first, so the bar knows how many there are."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as shown:
        listing = shown.add_task(f"listing {blobs.where}", total=None)
        digests = []
        for digest in blobs.digests():
            digests.append(digest)
            shown.update(listing, description=f"listing {blobs.where}: {len(digests)}")
        shown.remove_task(listing)
        task = shown.add_task(f"rekeying to '{keys.primary}'", total=len(digests))
        return rekey(blobs, keys, digests=digests,
                     progress=lambda counts: shown.update(task, completed=counts.blobs))
