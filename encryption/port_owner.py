"""Whether a TCP port can be listened on, and if not, which process holds it: a codec server
started on a taken port would print its banner and then the HTTP server's bind error, which
names neither the port's holder nor what to do.

The holder is found as `ss -ltnp` finds it, from /proc: the listening socket's inode in
/proc/net/tcp (and tcp6), then the process with a descriptor on that socket. Only processes
this user may inspect can be named; for others the port is just taken."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

LISTEN = "0A"
"""A socket's state in /proc/net/tcp: listening."""


def port_taken(host: str, port: int) -> str | None:
    """None when `host:port` can be listened on; otherwise why not, naming the holder when known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the HTTP server will bind: a port whose last user is gone (TIME_WAIT) is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                return f"cannot listen on {host}:{port}: {error.strerror or error}"
        else:
            return None
    holder = holder_of(port)
    return f"port {port} on {host} is taken" + (f" by {holder}" if holder else "")


def holder_of(port: int) -> str | None:
    """The process listening on `port`, as `COMMAND (pid N)`, when this user can see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return f"{command_of(pid)} (pid {pid})"
    return None


def command_of(pid: str) -> str:
    """A process's command line, with a tether command shown as a person would type it."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    # `python -m tether.cli ...`, or the `tether` script run by its interpreter.
    starts = [i for i, arg in enumerate(argv[:3]) if arg == "tether.cli" or Path(arg).name == "tether"]
    if starts:
        argv = ["tether", *argv[starts[0] + 1:]]
    command = " ".join(" ".join(argv).split())
    return f"`{command[:120]}`" if command else "another process"
