"""A process's output, read as it comes and capped: head and tail kept, the middle counted
and dropped. The host's `docker exec` fallback caps with the same buffer."""

from __future__ import annotations

import collections
import os
import selectors
import time

from .config import LEADER_GONE_GRACE
from .processes import _killpg


class CappedBuffer:
    """Keeps the first and last `limit // 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(1, limit // 2)
        self.head = bytearray()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail.append(chunk)
            self.tail_size += len(chunk)
            while self.tail_size - len(self.tail[0]) >= self.half:
                self.tail_size -= len(self.tail.popleft())

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(self.tail_size, self.half)

    def text(self) -> str:
        tail = b"".join(self.tail)[-self.half:]
        if not self.truncated:
            return (bytes(self.head) + tail).decode("utf-8", "replace")
        dropped = self.total - len(self.head) - len(tail)
        marker = f"\n[... {dropped} bytes cut by tether ...]\n".encode()
        return (bytes(self.head) + marker + tail).decode("utf-8", "replace")


def _collect(process, stdin: bytes, buffers: dict, timeout: float) -> bool:
    """Feeds `stdin` to the process and reads its outputs into `buffers` until they close or
    the timeout passes; True if it passed. One thread does it all: a call that exhausts the
    pids limit can't stop its own output from being read.

    When the group's leader exits, the group is killed at once, so background children can't
    hold the outputs open; a `setsid` escapee still may, for a moment, before the sweep."""
    deadline = time.monotonic() + timeout
    pending = memoryview(stdin)
    writer = process.stdin
    assert writer is not None  # Popen(stdin=PIPE)
    with selectors.DefaultSelector() as selector:
        for pipe in buffers:
            selector.register(pipe, selectors.EVENT_READ)
        if pending:
            os.set_blocking(writer.fileno(), False)
            selector.register(writer, selectors.EVENT_WRITE, data="stdin")
        else:
            writer.close()
        while any(key.events == selectors.EVENT_READ for key in selector.get_map().values()):
            now = time.monotonic()
            if process.poll() is not None and deadline > now + LEADER_GONE_GRACE:
                _killpg(process.pid)
                deadline = now + LEADER_GONE_GRACE
            if now >= deadline:
                return process.poll() is None
            for key, _ in selector.select(min(deadline - now, 0.05)):
                if key.data == "stdin":
                    try:
                        pending = pending[os.write(writer.fileno(), pending[:65536]):]
                    except OSError:  # the tool stopped reading: what it didn't take is dropped
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(writer)
                        writer.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    buffers[key.fileobj].add(chunk)
                else:
                    selector.unregister(key.fileobj)
    return False
