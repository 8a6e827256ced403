"""The conversation store by URL: a local directory (`file://`) and a real S3 server
(SeaweedFS on 127.0.0.1), both through obstore, keep the same contract: blobs named by
their digest, never overwritten, idempotent to write, a clear error for what is missing or
unreachable. A worker whose TETHER_STORE_URL is `s3://` runs real runs through it."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store
from pydantic import ValidationError
from temporalio.client import Client
from tether import client as tether
from tether.contracts.messages import Message
from tether.settings import TetherSettings
from tether.store import (
    BlobNotFound,
    Conversations,
    LocalContentStore,
    StoreDenied,
    StoreUnavailable,
    open_store,
)
from tether.store.content import ContentAddressed

from tests.helpers import sandboxes
from tests.s3_server import SeaweedS3, s3_server_fixture  # noqa: F401  (the fixture)
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess


def s3_url() -> str:
    return f"s3://tether/tests-{uuid.uuid4().hex[:8]}"


def raw(store: ContentAddressed, digest: str) -> bytes:
    """The object's bytes as the backend holds them, read past tether's own code."""
    return bytes(obstore.get(store.blobs.store, f"{digest[:2]}/{digest[2:]}").bytes())  # type: ignore[attr-defined]


def check_the_contract(store: ContentAddressed) -> None:
    data = b'{"parent":null,"message":{"role":"user","content":"hello"}}'
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get(digest) == data and raw(store, digest) == data
    assert store.blobs.exists(digest)
    assert store.put(data) == digest  # idempotent
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not store.blobs.exists(missing)
    with pytest.raises(BlobNotFound, match=f"blob {missing[:12]} is not in .*TETHER_STORE_URL"):
        store.get(missing)
    with pytest.raises(ValueError, match="not a sha256 digest"):
        store.get("../../etc/passwd")


def test_a_directory_store_keeps_the_contract_and_its_old_layout(tmp_path: Path):
    check_the_contract(open_store(tmp_path.as_uri()))
    # A store written before backends existed (files at <root>/<2 hex>/<62 hex>) reads as before.
    data = b"written by an older tether"
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / "old" / digest[:2]).mkdir(parents=True)
    (tmp_path / "old" / digest[:2] / digest[2:]).write_bytes(data)
    assert LocalContentStore(tmp_path / "old").get(digest) == data


def test_an_s3_store_keeps_the_contract(s3_server: SeaweedS3):
    check_the_contract(open_store(s3_url()))


def test_an_object_once_written_is_never_overwritten(s3_server: SeaweedS3):
    url = s3_url()
    store = open_store(url)
    digest = store.put(b"first")
    s3 = S3Store.from_url(url)
    before = obstore.head(s3, f"{digest[:2]}/{digest[2:]}")
    time.sleep(1.1)  # S3 times have one-second resolution
    assert store.put(b"first") == digest
    after = obstore.head(s3, f"{digest[:2]}/{digest[2:]}")
    assert after["last_modified"] == before["last_modified"]


def test_two_hosts_share_one_s3_store_and_may_write_the_same_blob_at_once(s3_server: SeaweedS3):
    url = s3_url()
    host_a, host_b = Conversations(open_store(url)), Conversations(open_store(url))
    messages = [Message(role="user", content=f"message {i}") for i in range(20)]
    with ThreadPoolExecutor(8) as pool:  # both hosts write the same nodes concurrently
        heads = list(pool.map(lambda c: c.append(None, messages), [host_a, host_b] * 4))
    assert len(set(heads)) == 1
    # A third host, with nothing cached, reads the whole conversation another one wrote.
    assert Conversations(open_store(url)).load(heads[0]) == messages


def test_an_unreachable_s3_store_fails_quickly_saying_which(monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    store = open_store("s3://tether/nowhere")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="could not write to the store s3://tether/nowhere"):
        store.put(b"x")
    assert time.monotonic() - started < 30  # a few quick retries, then Temporal's own


def test_wrong_credentials_are_a_clear_error_of_their_own(s3_server: SeaweedS3,
                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StoreDenied, match=r"the store s3://tether/.* refused a write with these credentials"):
        open_store(s3_url()).put(b"x")


@pytest.mark.parametrize("url, problem", [
    ("ftp://host/x", "is not a store URL"),
    ("s3://", "names no bucket"),
    ("file://relative/path", "needs an absolute path"),
])
def test_a_bad_store_url_stops_the_process_naming_it(url: str, problem: str,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_STORE_URL", url)
    with pytest.raises(ValidationError, match=f"store_url[\\s\\S]*{problem}"):
        TetherSettings()


@pytest.mark.timeout(180)
async def test_runs_go_through_an_s3_store_and_nothing_through_the_local_disk(
    s3_server: SeaweedS3, temporal_client: Client, docker_engine, tmp_path: Path,
):
    url = s3_url()
    data_dir = tmp_path / "data"
    queue, worker_id = f"s3-{uuid.uuid4().hex[:8]}", f"s3-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(temporal_client, task_queue=queue, worker_id=worker_id,
                           log_file=tmp_path / "worker.log",
                           env={**s3_server.env(), "TETHER_STORE_URL": url,
                                "TETHER_DATA_DIR": str(data_dir), "TETHER_TRACE_FILE": "off"})
    await worker.start()
    try:
        runs = [await tether.start_run(temporal_client, scripted_run(
            f"store {i}", turn(python=f"print({i} * 7)"), turn("{{last_output}}")), task_queue=queue)
            for i in range(3)]
        results = await asyncio.wait_for(asyncio.gather(*(r.result() for r in runs)), 120)
        assert [r.output.strip() for r in results] == ["0", "7", "14"], worker.log()
    finally:
        await worker.stop()
        leftovers = sandboxes().managed(**{"tether.worker": worker_id})
        for container in leftovers:
            sandboxes().remove(container.id)
    assert not leftovers
    # System prompt, task, assistant turns, tool results, the script: all in the bucket.
    prefix = url.removeprefix("s3://tether/")
    keys = [o["path"] for batch in obstore.list(S3Store.from_url("s3://tether"), prefix=prefix)
            for o in batch]
    assert len(keys) >= 3 * 4, keys
    assert not (data_dir / "store").exists() or not any((data_dir / "store").rglob("*"))
