"""Which worker attempts a starting worker may hand back: only those of a process of this
host that no longer exists (`tether.worker._process_gone`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tether.worker import _process_gone

HOST = socket.gethostname()


def test_an_attempt_of_a_process_of_this_host_that_exited_is_handed_back():
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)
    assert _process_gone(f"{exited.stdout.strip()}@{HOST}", own=f"{os.getpid()}@{HOST}")


def test_an_attempt_of_a_live_process_or_of_this_one_is_left_alone():
    assert not _process_gone(f"{os.getppid()}@{HOST}", own=f"{os.getpid()}@{HOST}")
    assert not _process_gone(f"{os.getpid()}@{HOST}", own=f"{os.getpid()}@{HOST}")


def test_an_attempt_of_another_host_or_an_identity_of_another_form_is_left_alone():
    assert not _process_gone(f"999999@{HOST}-elsewhere", own=f"{os.getpid()}@{HOST}")
    assert not _process_gone("worker-7", own=f"{os.getpid()}@{HOST}")
    assert not _process_gone("", own=f"{os.getpid()}@{HOST}")
