"""The host's end of a sandbox's executor: JSON lines over the container's attached stream.

One channel per container per worker process. Requests carry an id; a reader thread
matches responses to waiting futures, so concurrent tool calls share one stream. No
network and no host mount are involved: the stream is the engine's attach API.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
import threading
import uuid
from concurrent.futures import Future
from typing import Any

from docker import APIClient

_HEADER = struct.Struct(">BxxxI")


class ChannelClosed(ConnectionError):
    """The stream to the executor ended: the container stopped or the engine went away."""


class ExecutorChannel:
    def __init__(self, api: APIClient, container_id: str) -> None:
        self.container_id = container_id
        raw = api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        self._sock: socket.socket = getattr(raw, "_sock", raw)
        self._keepalive = raw  # the HTTP response object must outlive the socket's use
        self._send_lock = threading.Lock()
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        # Unique across channels: an executor answers requests a dead channel sent on the
        # stream a new channel reads, and those answers must match nothing here.
        self._prefix = uuid.uuid4().hex[:12]
        self._ids = itertools.count()
        self.closed = False
        self._reader = threading.Thread(target=self._read_forever, daemon=True)
        self._reader.start()

    def request(self, message: dict[str, Any]) -> Future[dict[str, Any]]:
        """Sends one request; the future resolves with the executor's response."""
        request_id = f"{self._prefix}-{next(self._ids)}"
        future: Future[dict[str, Any]] = Future()
        self._pending[request_id] = future
        line = json.dumps({**message, "id": request_id}, separators=(",", ":")) + "\n"
        try:
            with self._send_lock:
                if self.closed:
                    raise ChannelClosed(f"stream to {self.container_id[:12]} is closed")
                self._sock.sendall(line.encode())
        except OSError as error:
            self._pending.pop(request_id, None)
            self._fail_all(error)
            raise ChannelClosed(f"stream to {self.container_id[:12]} broke: {error}") from None
        return future

    def close(self) -> None:
        with self._send_lock:
            self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _read_forever(self) -> None:
        buffer = b""
        try:
            while True:
                stream, payload = self._read_frame()
                if stream != 1:  # stderr: the executor only writes there when it crashes
                    continue
                buffer += payload
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self._deliver(line)
        except (OSError, ChannelClosed) as error:
            self._fail_all(error)

    def _read_frame(self) -> tuple[int, bytes]:
        header = self._read_exact(_HEADER.size)
        stream, size = _HEADER.unpack(header)
        return stream, self._read_exact(size)

    def _read_exact(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            chunk = self._sock.recv(min(remaining, 1 << 20))
            if not chunk:
                raise ChannelClosed(f"stream from {self.container_id[:12]} ended")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _deliver(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        future = self._pending.pop(str(message.get("id")), None)
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_all(self, error: BaseException) -> None:
        self.closed = True
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ChannelClosed(f"executor stream lost: {error}"))
