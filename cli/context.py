"""What every command shares: the environment's settings, read once, and a run's links."""

from __future__ import annotations

import functools
from typing import Any

from tether.cli.render import print_error
from tether.connection import ConnectionConfigError, resolved
from tether.encryption import InvalidKeys
from tether.settings import SettingsError, TetherSettings, read_settings


@functools.cache
def settings() -> TetherSettings:
    """The environment's settings, read once per command, with the address and namespace of
    the Temporal profile in use (tether.connection)."""
    try:
        return resolved(read_settings())
    except (InvalidKeys, ConnectionConfigError, SettingsError) as error:
        print_error(str(error))
        # SystemExit, not typer.Exit: that is a RuntimeError, which a command's `except
        # Exception` would catch, and then ask for the settings (and print this) again.
        raise SystemExit(2) from None


def run_links(workflow_id: str, run_id: str = "") -> dict[str, str]:
    return {"workflow_id": workflow_id, "run_id": run_id, "ui": settings().ui_link(workflow_id),
            "show": f"temporal workflow show -w {workflow_id}"}


def given(**values: Any) -> dict[str, Any]:
    """The options a person gave: those not None."""
    return {name: value for name, value in values.items() if value is not None}
