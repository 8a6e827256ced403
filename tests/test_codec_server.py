"""`tether codec-server` over real HTTP on 127.0.0.1: Temporal's remote codec protocol, as the
Web UI calls it from the browser (CORS) and as `temporal --codec-endpoint` does, and who it
refuses: no token, another Host (DNS rebinding), another origin, a body too big, bad input.
(`temporal workflow show --codec-auth` through it, on an encrypted run, is in
test_encryption.py.)
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload
from tether.embedded import temporal as embedded
from tether.encryption import EncryptionCodec, KeyRing

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
KEYS = f"{KeyRing.generate('new')},{KeyRing.generate('old')}"
UI = "http://localhost:8233"
TOKEN = "codec-token-" + "7" * 20
AUTH = {"authorization": f"Bearer {TOKEN}"}


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


def start(port: int, keys: str | None, *args: str, token: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TETHER_ENCRYPTION_KEYS", "TETHER_CODEC_TOKEN")}
    if keys:
        env["TETHER_ENCRYPTION_KEYS"] = keys
    if token:
        env["TETHER_CODEC_TOKEN"] = token
    return subprocess.Popen([sys.executable, "-m", "tether.cli", "codec-server", "--port", str(port), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def exit_output(server: subprocess.Popen[str]) -> str:
    """What a server that should stop at start printed; one that keeps running is killed."""
    try:
        return server.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        server.kill()
        return server.communicate()[0] + "\n(it kept running)"


@pytest.fixture(scope="module")
def codec_url() -> Iterator[str]:
    port = free_port()
    server = start(port, KEYS, "--cors-origin", UI, "--allow-host", "codec.internal", token=TOKEN)
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
                                 {"x-namespace": "default", "origin": UI, **AUTH})
    assert status == 200 and headers.get("access-control-allow-origin") == UI
    encoded = json.loads(body)
    assert len(encoded["payloads"]) == 2
    for payload in encoded["payloads"]:
        assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
        assert base64.b64decode(payload["metadata"]["encryption-key-id"]) == b"new"
        assert b"secret plan" not in base64.b64decode(payload["data"])
    status, _, body = call(f"{codec_url}/decode", json.dumps(encoded).encode(), AUTH)
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
    status, _, body = call(f"{codec_url}/decode", b"not json", AUTH)
    assert status == 400 and "not a Payloads message" in json.loads(body)["error"]
    foreign = {"payloads": [{"metadata": {"encoding": b64(b"binary/encrypted"),
                                          "encryption-key-id": b64(b"gone")}, "data": b64(b"x" * 40)}]}
    status, _, body = call(f"{codec_url}/decode", json.dumps(foreign).encode(), AUTH)
    assert status == 422
    assert "encrypted with key 'gone'" in json.loads(body)["error"]


def test_without_keys_it_refuses_to_start():
    server = start(free_port(), None)
    output = exit_output(server)
    assert server.returncode == 2
    assert "the codec server needs TETHER_ENCRYPTION_KEYS" in output


ENCRYPTED = {"payloads": [{"metadata": {"encoding": b64(b"json/plain")}, "data": b64(b'"x"')}]}


def test_a_request_without_the_right_token_is_refused(codec_url):
    body = json.dumps(ENCRYPTED).encode()
    for headers in ({}, {"authorization": "Bearer wrong-token-wrong-token"},
                    {"authorization": TOKEN}, {"authorization": f"Basic {TOKEN}"}):
        status, answer, text = call(f"{codec_url}/encode", body, headers)
        assert status == 401, headers
        assert answer.get("www-authenticate") == "Bearer"
        assert "TETHER_CODEC_TOKEN" in json.loads(text)["error"]
    assert call(f"{codec_url}/encode", body, AUTH)[0] == 200


def test_the_token_may_be_the_endpoints_first_path_segment_for_the_web_ui(codec_url):
    # The Web UI sends no header of its own: its codec endpoint carries the token instead.
    body = json.dumps(ENCRYPTED).encode()
    assert call(f"{codec_url}/{TOKEN}/encode", body, {"origin": UI})[0] == 200
    assert call(f"{codec_url}/{TOKEN[:-1]}x/encode", body, {"origin": UI})[0] == 401


def test_a_request_naming_another_host_is_refused_against_dns_rebinding(codec_url):
    port = codec_url.rpartition(":")[2]
    body = json.dumps(ENCRYPTED).encode()
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        status, _, text = call(f"{codec_url}/encode", body, {**AUTH, "host": host})
        assert status == 403, host
        assert "not a name this codec server answers to" in json.loads(text)["error"]
    preflight = {"host": f"evil.example:{port}", "origin": UI, "access-control-request-method": "POST"}
    assert call(f"{codec_url}/decode", b"", preflight, method="OPTIONS")[0] == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "codec.internal", f"codec.internal:{port}"):
        assert call(f"{codec_url}/encode", body, {**AUTH, "host": host})[0] == 200, host


def test_a_browser_request_from_another_origin_is_refused_even_with_the_token(codec_url):
    # A page elsewhere can send a "simple" POST without a preflight; it must not be served.
    status, headers, _ = call(f"{codec_url}/encode", json.dumps(ENCRYPTED).encode(),
                              {**AUTH, "origin": "http://evil.example", "content-type": "text/plain"})
    assert status == 403 and "access-control-allow-origin" not in headers


def send_until_answered(codec_url: str, head: bytes, chunks: Iterator[bytes]) -> int:
    """The status a server answers while the body is still being sent: it refuses a body too
    big as soon as it knows, without reading the rest."""
    host, _, port = codec_url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(head)
        for chunk in chunks:
            if select.select([connection], [], [], 0.01)[0]:
                break
            connection.sendall(chunk)
        answer = connection.recv(200)
    return int(answer.split(b" ")[1])


def test_a_body_over_the_limit_is_refused_with_413(codec_url):
    port = codec_url.rpartition(":")[2]
    head = (f"POST /decode HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\n")
    megabyte = b"A" * (1024 * 1024)
    declared = f"{head}Content-Length: {17 * 1024 * 1024}\r\n\r\n".encode()
    assert send_until_answered(codec_url, declared, iter([megabyte] * 17)) == 413
    # Without a Content-Length: a chunked body is counted as it arrives.
    chunked = f"{head}Transfer-Encoding: chunked\r\n\r\n".encode()
    chunk = b"%x\r\n%s\r\n" % (len(megabyte), megabyte)
    assert send_until_answered(codec_url, chunked, iter([chunk] * 40)) == 413
    # ...and one just under the limit is read whole.
    status, _, text = call(f"{codec_url}/decode", b" " * (16 * 1024 * 1024 - 10) + b"{}", AUTH)
    assert status == 200 and json.loads(text) == {"payloads": []}


async def test_malformed_input_is_a_client_error_never_a_server_error(codec_url):
    ring = KeyRing.parse(KEYS)
    key_id, not_a_payload = ring.encrypt(b"\xff\xfe not a protobuf payload \x00")
    bodies = [
        b"", b"[]", b'"payloads"', b'{"payloads": 5}', b'{"payloads": [1]}', b"\xff\xfe",
        b'{"payloads": [{"metadata": {"encoding": 5}}]}',
        b'{"payloads": [{"data": "not base64!"}]}',
        b"[" * 100_000,
        json.dumps({"payloads": [{"metadata": {"encoding": b64(b"binary/encrypted"),
                                               "encryption-key-id": b64(b"\xff")},
                                  "data": b64(b"x" * 40)}]}).encode(),
        json.dumps({"payloads": [{"metadata": {"encoding": b64(b"binary/encrypted"),
                                               "encryption-key-id": b64(key_id.encode())},
                                  "data": b64(not_a_payload)}]}).encode(),
        json.dumps({"payloads": [{"metadata": {"encoding": b64(b"binary/encrypted"),
                                               "encryption-key-id": b64(b"new")},
                                  "data": b64(b"short")}]}).encode(),
    ]
    for body in bodies:
        status, _, text = call(f"{codec_url}/decode", body, AUTH)
        assert 400 <= status < 500, (body[:80], status, text[:200])
        assert json.loads(text)["error"]
    # ...and the server still serves after them.
    [sealed] = await EncryptionCodec(ring).encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=b'"ok"')])
    status, _, text = call(f"{codec_url}/decode",
                           json.dumps({"payloads": [MessageToDict(sealed)]}).encode(), AUTH)
    assert status == 200 and base64.b64decode(json.loads(text)["payloads"][0]["data"]) == b'"ok"'


def test_without_a_token_it_refuses_to_listen_beyond_loopback():
    server = start(free_port(), KEYS, "--host", "0.0.0.0")
    output = exit_output(server)
    assert server.returncode == 2
    assert "set TETHER_CODEC_TOKEN" in output and "0.0.0.0" in output


def wait_until_it_answers(server: subprocess.Popen[str], port: int) -> None:
    """Until the codec server on `port` accepts connections; fails if it exits or takes 30 s."""
    deadline = time.monotonic() + 30
    while not embedded.answers(f"127.0.0.1:{port}"):
        assert server.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)


def test_without_a_token_on_loopback_it_says_so_and_still_checks_the_host():
    port = free_port()
    server = start(port, KEYS)
    try:
        wait_until_it_answers(server, port)
        body = json.dumps(ENCRYPTED).encode()
        assert call(f"http://127.0.0.1:{port}/encode", body)[0] == 200
        assert call(f"http://127.0.0.1:{port}/encode", body, {"host": "evil.example"})[0] == 403
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "no token" in output


@pytest.mark.parametrize(("args", "env_token", "says"), [
    (["--cors-origin", "*"], TOKEN, "'*'"),
    ([], "short", "at least 16"),
    ([], "has spaces in it, sixteen+", "at least 16"),
    (["--token-env", "NOT_SET_ANYWHERE_HERE"], None, "NOT_SET_ANYWHERE_HERE is not set"),
])
def test_a_bad_token_or_origin_stops_it_at_start(args, env_token, says):
    server = start(free_port(), KEYS, *args, token=env_token)
    output = exit_output(server)
    assert server.returncode == 2 and says in output
    assert "Traceback" not in output and (env_token is None or env_token not in output)


def test_the_token_can_come_from_a_variable_named_by_token_env():
    port = free_port()
    env_name = "MY_CODEC_SECRET"
    os.environ[env_name] = TOKEN
    try:
        server = start(port, KEYS, "--token-env", env_name)
    finally:
        del os.environ[env_name]
    try:
        wait_until_it_answers(server, port)
        body = json.dumps(ENCRYPTED).encode()
        assert call(f"http://127.0.0.1:{port}/encode", body)[0] == 401
        assert call(f"http://127.0.0.1:{port}/encode", body, AUTH)[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def ui_codec_endpoint(ui_port: int, process: subprocess.Popen[str]) -> str:
    """The codec endpoint the Web UI on `ui_port` tells the browser, once it answers."""
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None and time.monotonic() < deadline, "the Web UI did not start"
        if embedded.answers(f"127.0.0.1:{ui_port}"):
            status, _, text = call(f"http://127.0.0.1:{ui_port}/api/v1/settings", b"", method="GET")
            if status == 200:
                return str(json.loads(text)["Codec"]["Endpoint"])
        time.sleep(0.3)


def test_tether_server_gives_the_web_ui_an_endpoint_that_carries_the_token(tmp_path):
    port, ui_port, codec_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "TEMPORAL_ADDRESS"}
    env.update(TETHER_ENCRYPTION_KEYS=KEYS, TETHER_CODEC_TOKEN=TOKEN, TETHER_DATA_DIR=str(tmp_path))
    server = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "server", "--port", str(port), "--ui-port", str(ui_port),
         "--codec-endpoint", f"http://localhost:{codec_port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    codec = start(codec_port, KEYS, "--cors-origin", f"http://localhost:{ui_port}", token=TOKEN)
    try:
        endpoint = ui_codec_endpoint(ui_port, server)
        assert endpoint == f"http://localhost:{codec_port}/{TOKEN}"
        # What the Web UI then sends from the browser: no header of its own, the UI's origin.
        status, headers, _ = call(f"{endpoint}/encode", json.dumps(ENCRYPTED).encode(),
                                  {"origin": f"http://localhost:{ui_port}", "x-namespace": "default"})
        assert status == 200 and headers["access-control-allow-origin"] == f"http://localhost:{ui_port}"
    finally:
        for process in (server, codec):
            process.terminate()
            process.wait(timeout=30)


def test_tether_dev_without_a_token_makes_one_for_its_codec_server_and_its_web_ui(tmp_path):
    port, ui_port, codec_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "TETHER_CODEC_TOKEN"}
    env.update(TETHER_ENCRYPTION_KEYS=KEYS, TETHER_DATA_DIR=str(tmp_path), TETHER_UI_PORT=str(ui_port),
               TEMPORAL_ADDRESS=f"127.0.0.1:{port}", TETHER_TASK_QUEUE=f"dev-{port}")
    dev = subprocess.Popen([sys.executable, "-m", "tether.cli", "dev", "--codec-endpoint", f"http://localhost:{codec_port}"],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        endpoint = ui_codec_endpoint(ui_port, dev)
        base, _, token = endpoint.rpartition("/")
        assert base == f"http://localhost:{codec_port}" and len(token) >= 16
        deadline = time.monotonic() + 30
        while not embedded.answers(f"127.0.0.1:{codec_port}"):
            assert time.monotonic() < deadline, "the codec server did not start"
            time.sleep(0.1)
        body = json.dumps(ENCRYPTED).encode()
        assert call(f"{endpoint}/encode", body, {"origin": f"http://localhost:{ui_port}"})[0] == 200
        assert call(f"{base}/encode", body)[0] == 401
    finally:
        dev.send_signal(signal.SIGINT)
        output, _ = dev.communicate(timeout=60)
    assert token not in output
