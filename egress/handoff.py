"""The hand-off socket beside a run's: where the sandbox's executor passes the proxy the
listener it made for its tools on the sandbox's loopback (see the executor's `egress.py`),
and whose sockets a run's are (`give`).

Standard library only, like `policy.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat

HANDOFF_NAME = "listener.sock"
"""Beside a run's socket; the executor's `config.py` names it too."""
HANDOFF_TIMEOUT_S = 5.0


def give(path: str, owner: int | None) -> bool:
    """Makes a run's socket its sandbox's: connecting to it takes write permission, and
    whoever may connect gets the run's way out and the secrets added on it. With the
    sandboxes' uid (`owner`) it is theirs alone (0600), where this process may give a file
    away (as root, or with CAP_CHOWN). Without one, or where it can't, any local user may
    connect (0666): the sandbox's processes have a uid of their own, never this one."""
    if owner is not None:
        try:
            os.chown(path, owner, owner)
            os.chmod(path, 0o600)
            return True
        except PermissionError:
            pass
    os.chmod(path, 0o666)
    return False


def unix_listener(path: str, owner: int | None) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    give(path, owner)
    listener.listen(8)
    listener.setblocking(False)
    return listener


async def received_listener(connection: socket.socket) -> socket.socket | None:
    """The listening TCP socket whose descriptor came on `connection`, in one message with its
    first byte; None for anything else (no descriptor, more than one, a file, a pipe, a
    unix or connected socket: whatever a tool in the sandbox might send instead)."""
    connection.setblocking(False)
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)
    loop.add_reader(connection.fileno(), ready)
    try:
        await asyncio.wait_for(readable, HANDOFF_TIMEOUT_S)
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(connection.fileno())
    # Room for one descriptor: the kernel closes any more a sender packed in, and says so.
    _, fds, flags, _ = socket.recv_fds(connection, 1, 1)
    if len(fds) != 1 or flags & socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        return None
    try:
        if not stat.S_ISSOCK(os.fstat(fds[0]).st_mode):
            raise OSError("not a socket")
        listener = socket.socket(fileno=fds[0])
    except OSError:
        os.close(fds[0])
        return None
    if (listener.family not in (socket.AF_INET, socket.AF_INET6) or listener.type != socket.SOCK_STREAM
            or not listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
        listener.close()
        return None
    return listener
