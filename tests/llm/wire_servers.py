"""Real loopback HTTP servers on 127.0.0.1 that speak the OpenAI and Anthropic wire protocols,
and what tests need to drive them.

The providers are driven through the real SDKs against these servers, so the tests cover
what crosses the wire: paths, auth headers, request bodies, status codes, headers, timeouts.
Each server checks the key the way its vendor does and otherwise plays replies queued by
the test, recording every request it received. A reply is either one body or a stream of
server-sent events, which can end properly, stop early, drop the connection or go silent.

Besides the servers: the test keys, the environment variables tests must not inherit,
`Endpoint` for the cases that run once per provider, and the check that a key leaked
nowhere. The fixtures that start and stop all of this are in this directory's `conftest.py`.
"""

from __future__ import annotations

import json
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import pytest
from tether.contracts import BUILTIN_TOOLS, Message, ModelSpec
from tether.llm.provider import ModelError

from tests.helpers import providers

Flavor = Literal["openai", "anthropic"]
Ending = Literal["finish", "stop", "cut", "stall"]
"""How a stream ends: `finish` as the vendor does (OpenAI's `[DONE]`), `stop` with the body
closed properly but nothing more (a proxy ending it early), `cut` by dropping the connection,
`stall` by going silent until the client gives up."""
HOLD_SECONDS = 5.0
OPENAI_KEY = "sk-test-openai-5ecret-value"
ANTHROPIC_KEY = "sk-ant-test-5ecret-value"
ENV_READ_BY_TETHER_OR_SDKS = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN", "TETHER_MODEL_TIMEOUT_SECONDS", "TETHER_MAX_OUTPUT_TOKENS",
)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    events: list[bytes] | None = None
    """A streamed body: each event is written and flushed on its own, as a chunk."""
    ending: Ending = "finish"
    hold: threading.Event | None = None
    hold_after: int = 0
    """With `hold`: after this many events, wait for the test to set it; cut if it never does."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def key(self) -> str:
        """The key the request carried. Anthropic takes `x-api-key` or a bearer token; which
        one its SDK sends depends on the SDK's version, so both count, as at Anthropic."""
        bearer = self.headers.get("authorization", "").removeprefix("Bearer ")
        return self.headers.get("x-api-key", bearer)


class ProviderServer:
    """One vendor's endpoint: `/v1/chat/completions` (OpenAI) or `/v1/messages` (Anthropic)."""

    def __init__(self, flavor: Flavor, api_key: str) -> None:
        self.flavor = flavor
        self.api_key = api_key
        self.path = "/v1/chat/completions" if flavor == "openai" else "/v1/messages"
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.closing = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        # A short poll interval: `shutdown` waits up to one interval, on every test.
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """The base URL as each SDK expects it: OpenAI's includes `/v1`, Anthropic's not."""
        root = f"http://127.0.0.1:{self._http.server_address[1]}"
        return f"{root}/v1" if self.flavor == "openai" else root

    def reply_json(self, body: object, status: int = 200, **kwargs: Any) -> None:
        self.replies.append(Reply(status=status, body=json.dumps(body).encode(), **kwargs))

    def reply_raw(self, body: bytes, **kwargs: Any) -> None:
        self.replies.append(Reply(body=body, **kwargs))

    def reply_stream(
        self, events: Sequence[dict[str, Any] | bytes], ending: Ending = "finish", **kwargs: Any
    ) -> None:
        """Events in the vendor's framing: OpenAI's bare `data:` lines closed by `[DONE]`,
        Anthropic's named events. Bytes are sent as they are (a malformed event)."""
        frames = [e if isinstance(e, bytes) else self._frame(e) for e in events]
        if self.flavor == "openai" and ending == "finish":
            frames.append(b"data: [DONE]\n\n")
        self.replies.append(
            Reply(events=frames, ending=ending, content_type="text/event-stream", **kwargs)
        )

    def _frame(self, event: dict[str, Any]) -> bytes:
        data = f"data: {json.dumps(event)}\n\n"
        return (data if self.flavor == "openai" else f"event: {event['type']}\n{data}").encode()

    def start(self) -> None:
        self._thread.start()

    def serve_once_started(self) -> None:
        """Starts serving unless it already does: a session's server starts with its first test."""
        if not self._thread.is_alive():
            self.start()

    def reset(self, api_key: str) -> None:
        """Clean for the next test: no queued reply, no request seen, the key it expects, and
        any handler still sleeping through a `delay` woken."""
        self.closing.set()
        self.closing = threading.Event()
        self.replies.clear()
        self.requests.clear()
        self.api_key = api_key

    def stop(self) -> None:
        self.closing.set()  # wakes handlers sleeping through a `delay`
        self._http.shutdown()
        self._http.server_close()

    def answer(self, received: Received) -> Reply:
        if received.path != self.path:
            return _error_reply(self.flavor, 404, "not_found_error", f"no route {received.path}")
        if received.key != self.api_key:
            # Like OpenAI's own 401, the message echoes the key it got.
            message = f"Incorrect API key provided: {received.key}."
            return _error_reply(self.flavor, 401, "authentication_error", message)
        if not self.replies:
            return _error_reply(self.flavor, 500, "api_error", "the test queued no reply")
        return self.replies.popleft()


def _error_reply(flavor: Flavor, status: int, kind: str, message: str) -> Reply:
    if flavor == "openai":
        body: dict[str, Any] = {"error": {"message": message, "type": kind, "code": None}}
    else:
        body = {"type": "error", "error": {"type": kind, "message": message}}
    return Reply(status=status, body=json.dumps(body).encode())


def _handler_for(server: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            received = Received(
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw or b"{}"),
            )
            server.requests.append(received)
            reply = server.answer(received)
            if reply.delay and server.closing.wait(reply.delay):
                return
            try:
                self.send_response(reply.status)
                self.send_header("content-type", reply.content_type)
                if reply.events is None:
                    self.send_header("content-length", str(len(reply.body)))
                else:
                    self.send_header("transfer-encoding", "chunked")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if reply.events is None:
                    self.wfile.write(reply.body)
                else:
                    self._stream(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (a timeout test)

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionResetError:
                pass  # the client dropped a kept-alive connection: it gave up on a stream

        def _stream(self, reply: Reply) -> None:
            for sent, frame in enumerate(reply.events or []):
                if reply.hold and sent == reply.hold_after and not reply.hold.wait(HOLD_SECONDS):
                    return self._drop()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            if reply.ending == "stall":
                server.closing.wait(HOLD_SECONDS * 2)
            if reply.ending in ("cut", "stall"):
                return self._drop()
            self.wfile.write(b"0\r\n\r\n")

        def _drop(self) -> None:
            """End the connection mid-body, as a crashed server or a severed link would."""
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client left first (a stall it timed out on)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


HELLO = [Message(role="system", content="Be brief."), Message(role="user", content="hello")]


@dataclass
class Endpoint:
    """One provider's test server and a model spec that points at it, for the cases that run
    once per provider: the classification is shared, but each SDK raises its own exceptions."""

    server: ProviderServer
    spec: ModelSpec
    key_env: str
    streaming: bool = False
    seen: list[str] = field(default_factory=list)
    """With `streaming`, every text the provider passed to `on_text`."""

    @property
    def flavor(self) -> str:
        return self.spec.provider

    async def call(self) -> None:
        on_text = self.seen.append if self.streaming else None
        await providers().get(self.flavor).complete(
            self.spec, HELLO, [BUILTIN_TOOLS["shell"]], on_text=on_text)

    async def failure(self) -> ModelError:
        with pytest.raises(ModelError) as caught:
            await self.call()
        return caught.value

    def reply_error(self, status: int, message: str, **kwargs: Any) -> None:
        """An error in the vendor's own body format."""
        if self.flavor == "openai":
            body: dict = {"error": {"message": message, "type": "invalid_request_error"}}
        else:
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        self.server.reply_json(body, status=status, **kwargs)


def check_key_absent(error: BaseException, key: str) -> None:
    """Neither the message nor anything a traceback would print (causes, context) has it."""
    assert key not in str(error)
    assert key not in "".join(traceback.format_exception(error))


KeyCheck = Callable[[BaseException, str], None]
