"""Starts the executor: the sandbox image runs this folder, `python3 -u /opt/tether/executor`,
as the container's PID 1."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a folder, the folder itself is first on the path, where a module of the executor
    # could shadow the standard library's: its parent takes that place, and the package is
    # named so that its modules import one another (PEP 366).
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    __package__ = "executor"

from .main import main  # only once the package is named, just above

if __name__ == "__main__":
    main()
