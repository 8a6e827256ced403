"""Real HTTP and HTTPS servers on 127.0.0.1 for the egress tests, with a CA of the test's own."""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MB = 1 << 20


class Handler(BaseHTTPRequestHandler):
    """`/hello`: a greeting naming the server's port; `/bytes/N`: N MiB, streamed;
    POST `/count`: how many bytes the request's body held (chunked or not); `/headers`: the
    request's headers as JSON, each value as its SHA-256 (so a secret's value never comes
    back to the tool: the test compares digests); `/redirect?to=URL`: a 302 to URL."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/bytes/"):
            size = int(self.path.removeprefix("/bytes/")) * MB
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * MB
            for _ in range(size // MB):
                self.wfile.write(block)
            return
        if self.path == "/headers":
            self._answer(json.dumps({name.lower(): digest(value)
                                     for name, value in self.headers.items()}).encode())
            return
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect?to="))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._answer(f"hello from {self.server.server_address[1]}, host {self.headers['Host']}".encode())

    def do_POST(self) -> None:
        total = 0
        if self.headers.get("Transfer-Encoding") == "chunked":
            while size := int(self.rfile.readline().strip(), 16):
                total += len(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
        else:
            total = len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self._answer(f"received {total}".encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@contextmanager
def serving(server: ThreadingHTTPServer, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Runs `server` in a thread (over TLS with `tls`) until the block ends; yields its port."""
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def directory_server(root: Path, host: str = "127.0.0.1") -> Iterator[int]:
    """Serves the files under `root` (a package index), on the host's loopback."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    with serving(ThreadingHTTPServer((host, 0), handler)) as port:
        yield port


@contextmanager
def http_server(tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Iterator[int]:
    """A server on the host's loopback. Sandboxes ask for 127.0.0.2: 127.0.0.1 and localhost
    are their own loopback, which the proxy variables' NO_PROXY keeps from the proxy."""
    with serving(ThreadingHTTPServer((host, 0), Handler), tls) as port:
        yield port


def make_ca(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context whose certificate (for localhost, 127.0.0.1, .2 and .3) a CA of its own signed,
    and the CA's certificate file, for clients to trust."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tether egress test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("127.0.0.2")),
                x509.IPAddress(ipaddress.ip_address("127.0.0.3"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return context, ca_file
