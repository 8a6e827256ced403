"""`tether codec-server` over real HTTP on 127.0.0.1: Temporal's remote codec protocol, as the
Web UI calls it from the browser (CORS) and as `temporal --codec-endpoint` does.
(`temporal workflow show` through it, on an encrypted run, is in test_encryption.py.)
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tether.embedded import temporal as embedded
from tether.encryption import KeyRing

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
KEYS = f"{KeyRing.generate('new')},{KeyRing.generate('old')}"
UI = "http://localhost:8233"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def call(url: str, body: bytes, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def start(port: int, keys: str | None, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "TETHER_ENCRYPTION_KEYS"}
    if keys:
        env["TETHER_ENCRYPTION_KEYS"] = keys
    return subprocess.Popen([sys.executable, "cli.py", "codec-server", "--port", str(port), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def codec_url() -> Iterator[str]:
    port = free_port()
    server = start(port, KEYS, "--cors-origin", UI)
    deadline = time.monotonic() + 30
    while not embedded.answers(f"127.0.0.1:{port}"):
        assert server.poll() is None, server.stdout.read() if server.stdout else ""
        assert time.monotonic() < deadline, "the codec server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def test_payloads_round_trip_through_encode_and_decode(codec_url):
    payloads = {"payloads": [
        {"metadata": {"encoding": b64(b"json/plain")}, "data": b64(b'{"task": "the secret plan"}')},
        {"metadata": {"encoding": b64(b"binary/null")}},
    ]}
    status, headers, body = call(f"{codec_url}/encode", json.dumps(payloads).encode(),
                                 {"x-namespace": "default", "origin": UI})
    assert status == 200 and headers.get("access-control-allow-origin") == UI
    encoded = json.loads(body)
    assert len(encoded["payloads"]) == 2
    for payload in encoded["payloads"]:
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
        assert base64.b64decode(payload["metadata"]["encryption-key-id"]) == b"new"
        assert b"secret plan" not in base64.b64decode(payload["data"])
    status, _, body = call(f"{codec_url}/decode", json.dumps(encoded).encode())
    assert status == 200 and json.loads(body) == payloads


def test_the_web_uis_origin_may_call_it_and_others_may_not(codec_url):
    preflight = {"origin": UI, "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type,x-namespace"}
    status, headers, _ = call(f"{codec_url}/decode", b"", preflight, method="OPTIONS")
    assert status == 200 and headers["access-control-allow-origin"] == UI
    assert "x-namespace" in headers["access-control-allow-headers"]
    status, headers, _ = call(f"{codec_url}/decode", b"",
                              {**preflight, "origin": "http://127.0.0.1:1"}, method="OPTIONS")
    assert status == 400 and "access-control-allow-origin" not in headers


def test_bad_requests_and_unknown_keys_are_clear_errors(codec_url):
    status, _, body = call(f"{codec_url}/decode", b"not json")
    assert status == 400 and "not a Payloads message" in json.loads(body)["error"]
    foreign = {"payloads": [{"metadata": {"encoding": b64(b"binary/encrypted"),
                                          "encryption-key-id": b64(b"gone")}, "data": b64(b"x" * 40)}]}
    status, _, body = call(f"{codec_url}/decode", json.dumps(foreign).encode())
    assert status == 422
    assert "encrypted with key 'gone'" in json.loads(body)["error"]


def test_without_keys_it_refuses_to_start():
    server = start(free_port(), None)
    output, _ = server.communicate(timeout=60)
    assert server.returncode == 2
    assert "the codec server needs TETHER_ENCRYPTION_KEYS" in output
