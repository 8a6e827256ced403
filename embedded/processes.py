"""Starting a child process that a Ctrl-C cannot lose.

`subprocess.Popen` forks, then waits for the child to exec. A KeyboardInterrupt raised in
that wait leaves a running child that no variable holds: nothing stops it, and it keeps
the parent's stdout open, so whoever reads that output to its end waits forever. Here the
stopping signals that arrive while a child starts are held, then delivered again once the
child is held, to be handled as they would have been.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def start_process(command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(command, **popen)`, with a stopping signal that comes meanwhile
    delivered after it. Should that signal end this process or raise, the child is killed
    first: its caller never gets it."""
    process = None
    try:
        with _signals_held() as held:
            process = subprocess.Popen(command, **popen)
        for signum in held[:1]:
            if signal.getsignal(signum) == signal.SIG_DFL:  # this process ends at once
                _kill(process)
            signal.raise_signal(signum)  # its handler runs here, as Python handlers do
    except BaseException:  # that signal's KeyboardInterrupt, or one while handlers go back
        if process is not None:
            _kill(process)
        raise
    return process


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Records the stopping signals that arrive in the block instead of acting on them.
    Signal handlers belong to the main thread; elsewhere, nothing is held."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in STOPPING_SIGNALS
                if signal.getsignal(sig) != signal.SIG_IGN}
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
