"""A TCP proxy on 127.0.0.1 that holds back each answer for a while: a store that answers
slowly (a far region, a loaded bucket) in front of the real S3 server, for tests that must
see what a caller does while it waits."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType


class SlowProxy:
    def __init__(self, upstream: tuple[str, int], *, delay_s: float) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.answers = 0
        self._closed = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._closed.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            asked = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, asked, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, asked, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, asked: threading.Event,
              answering: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if not answering:
                    asked.set()
                elif asked.is_set():
                    # The first bytes of each answer wait; the rest of it follows at once.
                    asked.clear()
                    self.answers += 1
                    time.sleep(self.delay_s)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
