"""`tether codec-server`: Temporal's remote codec protocol over HTTP, so the Web UI and
`temporal workflow show --codec-endpoint URL` show the plaintext of encrypted runs to
whoever holds the keys and can reach this server.

`POST /encode` and `POST /decode` take and return `{"payloads": [...]}`, each payload in
protobuf's JSON form (`{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}`), as the
Web UI and the Temporal CLI send them. The Web UI calls from the browser, so the UI's origin
must be allowed (CORS). Anyone who reaches the server can decrypt: it listens on 127.0.0.1
unless told otherwise; put it behind authentication before it listens anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payloads
from tether.encryption.codec import EncryptionCodec
from tether.encryption.keys import DecryptionError, KeyRing

DEFAULT_PORT = 8081


def codec_app(keys: KeyRing, *, cors_origins: Sequence[str]) -> Starlette:
    codec = EncryptionCodec(keys)

    async def handle(request: Request) -> Response:
        try:
            body = await request.json()
            payloads = ParseDict(body, Payloads()).payloads if isinstance(body, dict) else None
        except (json.JSONDecodeError, ParseError, UnicodeDecodeError) as error:
            return _error(400, f"the body is not a Payloads message in JSON: {error}")
        if payloads is None:
            return _error(400, 'the body must be a JSON object: {"payloads": [...]}')
        try:
            if request.url.path == "/encode":
                changed = await codec.encode(payloads)
            else:
                changed = await codec.decode(payloads)
        except DecryptionError as error:
            return _error(422, str(error))
        return JSONResponse(MessageToDict(Payloads(payloads=changed)) or {"payloads": []})

    return Starlette(
        routes=[Route("/encode", handle, methods=["POST"]), Route("/decode", handle, methods=["POST"])],
        middleware=[Middleware(
            CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["POST"],
            # The Web UI names the namespace, and with "include credentials" sends a token.
            allow_headers=["content-type", "x-namespace", "authorization"],
            allow_credentials=True)],
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def serve(keys: KeyRing, *, host: str, port: int, cors_origins: Sequence[str]) -> None:
    """Serves until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    config = uvicorn.Config(codec_app(keys, cors_origins=cors_origins), host=host, port=port,
                            log_level="warning", access_log=False)
    await uvicorn.Server(config).serve()
