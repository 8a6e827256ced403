"""A git repository served over smart HTTP on the host's loopback, for the egress tests.

Debian git's own `git http-backend` answers each request, run as a CGI program by a small
threaded HTTP server: what a tool's `git clone` meets is git's real protocol, not a stand-in.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.egress.servers import serving

REPOSITORY = "repo.git"
README = "cloned through the egress proxy\n"
"""The content of README in the served repository's one commit."""

GIT = shutil.which("git") or "git"
_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def make_repository(root: Path) -> Path:
    """A bare repository `root/repo.git` with one commit holding README."""
    work = root / "work"
    work.mkdir(parents=True)
    (work / "README").write_text(README)
    for command in (["init", "-q", "-b", "main"], ["add", "README"],
                    ["-c", "user.name=tether tests", "-c", "user.email=tests@evil.example",
                     "commit", "-q", "-m", "one file"]):
        subprocess.run([GIT, *command], cwd=work, env=_ENV, check=True, capture_output=True)
    bare = root / REPOSITORY
    subprocess.run([GIT, "clone", "-q", "--bare", str(work), str(bare)], env=_ENV, check=True,
                   capture_output=True)
    return bare


class _Backend(BaseHTTPRequestHandler):
    """Hands every request to `git http-backend` (CGI) for the repositories under the
    server's `root`, and sends back what it printed."""

    protocol_version = "HTTP/1.1"
    root: Path

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _cgi(self) -> None:
        url = urlsplit(self.path)
        env = {**_ENV, "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "REQUEST_METHOD": self.command, "PATH_INFO": url.path, "QUERY_STRING": url.query,
               "REMOTE_ADDR": self.client_address[0], "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1"}
        for header in ("Content-Encoding", "Git-Protocol"):
            if header in self.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
        body = self._body()
        env["CONTENT_LENGTH"] = str(len(body))
        backend = subprocess.run([GIT, "http-backend"], input=body, env=env, capture_output=True,
                                 timeout=60, check=False)
        head, _, payload = backend.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = backend.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        # git sends a large request body chunked; a small one with its length.
        if self.headers.get("Transfer-Encoding") == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip(), 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def git_server(root: Path, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Serves the repositories under `root` over git's smart HTTP (HTTPS with `tls`); yields the port."""
    handler = type("Backend", (_Backend,), {"root": root})
    with serving(ThreadingHTTPServer((host, 0), handler), tls) as port:
        yield port
