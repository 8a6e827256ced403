"""An MCP session its host left (a worker that died mid-call, whose call was never retried in
this sandbox) is closed by the executor once idle past what its host asked: while it stayed
open, no sweep of the tools' leftovers ran, and every later call's daemons lived on."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers import sandboxes
from tests.sandbox.direct import call

LEAVE_A_DAEMON = """
import os
ready, told = os.pipe()
if os.fork() == 0:  # a daemon in a session of its own, out of reach of its call's end
    os.setsid()
    os.write(told, b"x")
    os.execvp("sleep", ["sleep", "303"])
os.read(ready, 1)  # returns once it has left the call's process group, not before
"""


async def ask(container_id: str, message: dict[str, Any]) -> dict[str, Any]:
    stream = await asyncio.to_thread(sandboxes().channel, container_id)
    return await asyncio.wait_for(asyncio.wrap_future(stream.request(message)), 10)


COMMAND_LINES = """
import glob
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        print(open(path, "rb").read().replace(b"\\0", b" ").decode().strip())
    except OSError:
        pass  # it ended meanwhile
"""


async def daemons(container_id: str) -> int:
    """How many daemons LEAVE_A_DAEMON left still run."""
    found = await call(container_id, COMMAND_LINES, tool="python")
    return found.stdout.splitlines().count("sleep 303")


async def test_a_session_its_host_left_is_closed_once_idle_and_the_sweeps_come_back(sandbox: str):
    # A server that never answers a request (it echoes), opened and then left: the host
    # that opened it is gone.
    opened = await ask(sandbox, {"op": "mcp_open", "session": "left", "argv": ["cat"], "idle_seconds": 1})
    assert opened["ok"], opened
    await call(sandbox, LEAVE_A_DAEMON, tool="python")
    assert await daemons(sandbox) == 1  # with the session open, no sweep runs

    await asyncio.sleep(1.5)  # idle past what its host asked
    await call(sandbox, "true")  # the next call closes it, and sweeps when it ends
    assert await daemons(sandbox) == 0
    gone = await ask(sandbox, {"op": "mcp_send", "session": "left", "line": "{}", "expect": None})
    assert not gone["ok"] and "no MCP session 'left' is open" in gone["error"]


async def test_a_session_in_use_is_never_closed_for_idleness(sandbox: str):
    opened = await ask(sandbox, {"op": "mcp_open", "session": "busy", "argv": ["cat"], "idle_seconds": 1})
    assert opened["ok"], opened
    # A request `cat` never answers: the exchange waits out its 3 s timeout, past the idle
    # limit, while calls come and would close an idle session.
    waiting = asyncio.create_task(ask(sandbox, {
        "op": "mcp_send", "session": "busy", "line": '{"jsonrpc": "2.0", "id": 1, "method": "ping"}',
        "expect": 1, "timeout": 3}))
    for _ in range(4):
        await asyncio.sleep(0.5)
        await call(sandbox, "true")
    answer = await waiting
    assert not answer["ok"] and "did not answer within 3 s" in answer["error"], answer
    # Still open: it answers a notification (no reply expected) as a live session does.
    alive = await ask(sandbox, {"op": "mcp_send", "session": "busy", "line": "{}", "expect": None})
    assert alive["ok"], alive
    closed = await ask(sandbox, {"op": "mcp_close", "session": "busy"})
    assert closed["ok"] and closed["result"] == {"closed": True}
