"""The `tether` command: a layer over `tether.client`, one module per group of commands.

`runs` starts and reads runs, `steering` changes them, `operations`, `images` and `keys` run
tether itself, `accounts` keeps budget accounts; `render` is how their output reads, `errors`
how they fail. `tether` (the entry point) and `python -m tether.cli` both run `main`.
"""

from tether.cli.app import app, main

# Each module adds its commands to `app` as it is imported, in this order in `tether --help`.
# isort: off
from tether.cli import runs, steering, fork, operations, images, keys, accounts  # noqa: F401
# isort: on

__all__ = ["app", "main"]
