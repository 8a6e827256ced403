"""`tether codec-server`: Temporal's remote codec protocol over HTTP, so the Web UI and
`temporal workflow show --codec-endpoint URL` show the plaintext of encrypted runs to
whoever holds the keys and is let in (`codec_access.py` says who is).

`POST /encode` and `POST /decode` take and return `{"payloads": [...]}`, each payload in
protobuf's JSON form (`{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}`), as the
Web UI and the Temporal CLI send them; `POST /TOKEN/encode` and `/TOKEN/decode` the same,
for the Web UI. A body over `MAX_BODY_BYTES` is refused with 413, one that isn't a Payloads
message (or holds a payload that can't be decrypted) with a 4xx that says why.
"""

from __future__ import annotations

import json

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads
from tether.encryption.codec import EncryptionCodec
from tether.encryption.codec_access import Access, HostGuard
from tether.encryption.keys import DecryptionError, KeyRing

DEFAULT_PORT = 8081
MAX_BODY_BYTES = 16 * 1024 * 1024
"""Temporal refuses a payload over 2 MB and a gRPC message over 4 MB; a request of a few
of them, base64 in JSON, stays well under this."""


class _TooLarge(Exception):
    pass


def codec_app(keys: KeyRing, *, access: Access) -> Starlette:
    codec = EncryptionCodec(keys)

    async def handle(request: Request) -> Response:
        if not access.origin_allowed(request.headers.get("origin")):
            return _error(403, "this codec server answers the Web UI's origin only "
                               "(--cors-origin names it)")
        if not access.token_given(request.headers, request.path_params.get("token")):
            if access.token is None:
                return _error(404, "not found: this codec server takes no token in its path")
            return _error(401, "this codec server needs its token (TETHER_CODEC_TOKEN): "
                               "`Authorization: Bearer TOKEN` (temporal --codec-auth 'Bearer TOKEN'), "
                               "or the endpoint http://HOST:PORT/TOKEN", {"www-authenticate": "Bearer"})
        try:
            raw = await _body(request)
        except _TooLarge:
            return _error(413, f"the body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB: "
                               "send fewer payloads at once")
        try:
            body = json.loads(raw)
            payloads = ParseDict(body, Payloads()).payloads if isinstance(body, dict) else None
        except (ValueError, ParseError, RecursionError, TypeError) as error:
            return _error(400, f"the body is not a Payloads message in JSON: {str(error)[:200]}")
        if payloads is None:
            return _error(400, 'the body must be a JSON object: {"payloads": [...]}')
        try:
            if request.url.path.endswith("/encode"):
                changed = await codec.encode(payloads)
            else:
                changed = await codec.decode(payloads)
        except DecryptionError as error:
            return _error(422, str(error))
        return JSONResponse(MessageToDict(Payloads(payloads=changed)) or {"payloads": []})

    routes = [Route(path, handle, methods=["POST"])
              for path in ("/encode", "/decode", "/{token}/encode", "/{token}/decode")]
    return Starlette(routes=routes, middleware=[
        Middleware(HostGuard, access=access),
        Middleware(
            CORSMiddleware, allow_origins=list(access.origins), allow_methods=["POST"],
            # The Web UI names the namespace, and with "pass the access token" sends one.
            allow_headers=["content-type", "x-namespace", "authorization"],
            allow_credentials=True),
    ])


async def _body(request: Request) -> bytes:
    """The body, counted as it arrives: a Content-Length can be absent (chunked) or untrue."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY_BYTES:
            raise _TooLarge
    return bytes(received)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def serve(keys: KeyRing, *, host: str, port: int, access: Access) -> None:
    """Serves until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(codec_app(keys, access=access), host=host, port=port,
                            log_level="warning", access_log=False)
    await uvicorn.Server(config).serve()
