"""The host's end of a sandbox's executor: JSON lines over the container's attached stream.

One channel per container per worker process. Requests carry an id; a reader thread
matches responses to waiting futures, so concurrent tool calls share one stream. No
network and no host mount are involved: the stream is the engine's attach API.

Every byte read here comes from a hostile container. The executor is the only process there
that holds the stream, but the host doesn't rely on it: a line is bounded, a frame that is
not the executor's (not JSON, not an answer, an answer to nothing this channel asked) closes
the channel as corrupt, and whatever stops the reader fails every waiting call, so nothing
waits on a stream nobody reads.
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
MAX_LINE_BYTES = 128 << 20
"""The longest answer an executor can give is a call's two outputs at the 8 MiB cap, every byte
escaped to at most six in JSON (96 MiB); a longer line is no answer, and not buffered."""
READ_BYTES = 1 << 20


class ChannelClosed(ConnectionError):
    """The stream to the executor ended: the container stopped or the engine went away."""


class ChannelCorrupt(ChannelClosed):
    """The container wrote what its executor never would: the sandbox can't be trusted to
    answer for its calls any more, and is taken as lost."""


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
        self.corrupt = False
        """Set once the container wrote what its executor never would."""
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
        self._shutdown()
        self._sock.close()

    def _shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read_forever(self) -> None:
        buffer = bytearray()
        try:
            while True:
                stream, payload = self._read_frame()
                if stream != 1:  # stderr: the executor only writes there when it crashes
                    continue
                # Only the new bytes are searched, and a line is cut out once: linear in what
                # is read, however the container splits it into frames.
                searched = len(buffer)
                buffer += payload
                while (end := buffer.find(b"\n", searched)) >= 0:
                    self._deliver(bytes(buffer[:end]))
                    del buffer[:end + 1]
                    searched = 0
                if len(buffer) > MAX_LINE_BYTES:
                    raise ChannelCorrupt(f"a line of over {MAX_LINE_BYTES} bytes")
        except BaseException as error:  # whatever ends the reader, no call waits on it
            self._fail_all(error)

    def _read_frame(self) -> tuple[int, bytes]:
        """One frame of the engine's stream: its header says which stream and how long. A
        frame may be longer than a read, never longer than a line may be."""
        header = self._read_exact(_HEADER.size)
        stream, size = _HEADER.unpack(header)
        if size > MAX_LINE_BYTES:
            raise ChannelCorrupt(f"a frame of {size} bytes")
        return stream, self._read_exact(size)

    def _read_exact(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            chunk = self._sock.recv(min(remaining, READ_BYTES))
            if not chunk:
                raise ChannelClosed(f"stream from {self.container_id[:12]} ended")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _deliver(self, line: bytes) -> None:
        """Hands an answer to the call waiting for it. An answer to a request an earlier
        channel sent (another prefix) or to none (`id` null: the executor could not read a
        request) is dropped; anything else the executor never writes."""
        try:
            message = json.loads(line)
        except ValueError:
            raise ChannelCorrupt("a line that is not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("ok"), bool):
            raise ChannelCorrupt("a line that is not an executor's answer")
        request_id = message.get("id")
        if request_id is None or (isinstance(request_id, str)
                                  and not request_id.startswith(f"{self._prefix}-")):
            return
        future = self._pending.pop(str(request_id), None)
        if future is None:
            raise ChannelCorrupt(f"an answer to {str(request_id)[:40]!r}, which nothing waits for")
        if not future.done():
            future.set_result(message)

    def _fail_all(self, error: BaseException) -> None:
        # Not under the send lock: a sender may hold it, blocked on a container that stopped
        # reading its requests.
        self.closed = True
        self.corrupt = self.corrupt or isinstance(error, ChannelCorrupt)
        failure = ChannelCorrupt if self.corrupt else ChannelClosed
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(failure(f"executor stream lost: {error}"))
        if self.corrupt:
            # Nobody reads the stream any more: close it, so the container can't fill it.
            self._shutdown()
