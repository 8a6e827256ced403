"""TETHER_ENCRYPTION_KEYS end to end: a run on a real dev server (with its SQLite file) and a
real worker process with keys leaves none of its task, tool output or model text in the
raw event history, the conversation store's files or the server's database; the CLI still
reads it; a wrong or missing key says which key; a key added in front still reads the old.

The codec and the store wrapper are checked on their own too (rotation, tampering), with
the real AES-GCM, no server needed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from tether import client as tether_client
from tether.contracts import names
from tether.embedded import temporal as embedded
from tether.encryption import DecryptionError, EncryptionCodec, InvalidKeys, KeyRing
from tether.settings import TetherSettings
from tether.store import ContentAddressed, open_blobs
from tether.store.backends import file_url
from tether.store.errors import StoreCorrupt
from tether.store.sealed import MAGIC, sealed

from tests.helpers import free_port, history_text
from tests.scripts import scripted_run, turn
from tests.workflows.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parents[1]
KEY_A = KeyRing.generate("key-a")
KEY_B = KeyRing.generate("key-b")
OTHER_A = KeyRing.generate("key-a")  # the same id, another key
CODEC_TOKEN = "codec-token-" + uuid.uuid4().hex


def keyed(keys: str | None) -> TetherSettings:
    return TetherSettings(encryption_keys=keys) if keys else TetherSettings()


# --- the parts on their own -------------------------------------------------------------

def test_a_key_ring_reads_ids_and_rejects_bad_entries_without_showing_them():
    ring = KeyRing.parse(f"{KEY_B}, {KEY_A}")
    assert ring.primary == "key-b" and ring.ids == ["key-b", "key-a"]
    secret = KEY_A.partition(":")[2]
    for bad, says in [("key-a", "expected `id:BASE64`"), ("key-a:not base64!", "not valid base64"),
                      ("key-a:" + secret[:20], "AES-256-GCM needs 32"), (f"{KEY_A},{KEY_A}", "given twice")]:
        with pytest.raises(InvalidKeys, match=says) as raised:
            TetherSettings(encryption_keys=f"{KEY_B},{bad}")
        assert KEY_B.partition(":")[2] not in str(raised.value)
        assert secret[:20] not in str(raised.value)
    assert "key-b" in repr(ring) and KEY_B.partition(":")[2] not in repr(ring)


async def test_payloads_encrypted_with_one_key_read_after_another_is_added_in_front():
    payload = Payload(metadata={"encoding": b"json/plain"}, data=b'{"task": "the plan"}')
    [sealed_by_a] = await EncryptionCodec(KeyRing.parse(KEY_A)).encode([payload])
    assert b"the plan" not in sealed_by_a.SerializeToString()
    assert sealed_by_a.metadata["encryption-key-id"] == b"key-a"
    rotated = EncryptionCodec(KeyRing.parse(f"{KEY_B},{KEY_A}"))
    assert await rotated.decode([sealed_by_a]) == [payload]
    [sealed_by_b] = await rotated.encode([payload])
    assert sealed_by_b.metadata["encryption-key-id"] == b"key-b"
    with pytest.raises(DecryptionError, match="encrypted with key 'key-b', which TETHER_ENCRYPTION_KEYS"):
        await EncryptionCodec(KeyRing.parse(KEY_A)).decode([sealed_by_b])
    with pytest.raises(DecryptionError, match="can't be decrypted with key 'key-a'"):
        await EncryptionCodec(KeyRing.parse(OTHER_A)).decode([sealed_by_a])
    # What was written before keys were set passes as it is.
    assert await rotated.decode([payload]) == [payload]


def test_the_store_encrypts_under_plaintext_digests_and_reads_across_a_rotation(tmp_path):
    blobs = open_blobs(file_url(tmp_path))
    old = ContentAddressed(sealed(blobs, KeyRing.parse(KEY_A)))
    digest = old.put(b"tool output: 42")
    assert digest == hashlib.sha256(b"tool output: 42").hexdigest()
    [stored] = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert stored.read_bytes().startswith(MAGIC) and b"42" not in stored.read_bytes()
    assert old.put(b"tool output: 42") == digest  # a retried write: the same blob, still one
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1

    rotated = ContentAddressed(sealed(blobs, KeyRing.parse(f"{KEY_B},{KEY_A}")))
    assert rotated.get(digest) == b"tool output: 42"
    newer = rotated.put(b"written after the rotation")
    with pytest.raises(DecryptionError, match="key 'key-b'"):
        old.get(newer)
    with pytest.raises(DecryptionError, match="key 'key-a'"):
        ContentAddressed(sealed(blobs, KeyRing.parse(OTHER_A))).get(digest)

    # A blob can't be moved under another name: its digest is authenticated with it.
    moved = blobs.get(newer)
    target = tmp_path / digest[:2] / digest[2:]
    target.write_bytes(moved)
    with pytest.raises(DecryptionError):
        rotated.get(digest)
    # A blob from before keys were set reads as it is, if it is what its name says.
    plain = ContentAddressed(blobs).put(b"from before the keys")
    assert rotated.get(plain) == b"from before the keys"


@pytest.mark.parametrize("stored", [
    MAGIC, MAGIC + b"\x05", MAGIC + b"\x05key-a", MAGIC + b"\x05key-a" + b"n" * 20,
    MAGIC + b"\x02\xff\xfe" + b"n" * 40])
def test_a_sealed_blob_cut_short_or_with_a_garbled_header_is_a_clear_store_error(tmp_path, stored):
    blobs = open_blobs(file_url(tmp_path))
    digest = hashlib.sha256(b"the content").hexdigest()
    blobs.put(digest, stored)
    with pytest.raises(StoreCorrupt, match=f"blob {digest[:12]} in .* is cut short or garbled"):
        ContentAddressed(sealed(blobs, KeyRing.parse(KEY_A))).get(digest)


# --- a whole run, encrypted ------------------------------------------------------------

@dataclass
class Stack:
    address: str
    data: Path
    queue: str
    env: dict[str, str]
    plain: Client
    """A client without keys: it sees what the server holds."""


@pytest.fixture(scope="module")
async def stack(temporal_address, docker_engine, tmp_path_factory) -> AsyncIterator[Stack]:
    """A dev server of its own (its SQLite file is read below) and a worker with KEY_A."""
    data = tmp_path_factory.mktemp("encrypted")
    port = free_port()
    server = embedded.start(port=port, ui_port=None, db_file=data / "temporal.db",
                            log_file=data / "temporal.log", wait_seconds=90)
    address = f"127.0.0.1:{port}"
    queue = f"enc-{uuid.uuid4().hex[:6]}"
    env = {"TEMPORAL_ADDRESS": address, "TETHER_TASK_QUEUE": queue,
           "TETHER_ENCRYPTION_KEYS": KEY_A, "TETHER_STORE_DIR": str(data / "store")}
    worker: WorkerProcess | None = None
    try:  # the server is stopped whatever fails after it started
        plain = await tether_client.connect(TetherSettings(), address=address)
        worker = WorkerProcess(plain, task_queue=queue, worker_id=queue,
                               log_file=data / "worker.log", env=env)
        await worker.start()
        yield Stack(address, data, queue, env, plain)
    finally:
        if worker is not None:
            await worker.stop()
        server.terminate()
        server.wait(timeout=30)


@dataclass
class EncryptedRun:
    workflow_id: str
    secrets: list[str]


@pytest.fixture(scope="module")
async def encrypted_run(stack: Stack) -> EncryptedRun:
    marker = uuid.uuid4().hex[:10]
    client = await tether_client.connect(keyed(KEY_A), address=stack.address)
    # The task is in the input; the tool's output and the final answer are computed, so
    # they appear nowhere unless the run's own data leaks.
    result = await tether_client.run(client, scripted_run(
        f"task-{marker}: count the files",
        turn(f"thinking-{marker}", shell=f"echo tool-$((6*7))-{marker}"),
        turn("answer-{{last_output}}")), task_queue=stack.queue, workflow_id=f"enc-{marker}")
    assert result.status == "completed", result
    assert result.output.strip() == f"answer-tool-42-{marker}"
    return EncryptedRun(f"enc-{marker}", [f"task-{marker}", f"thinking-{marker}", f"tool-42-{marker}"])


def tether_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "TETHER_ENCRYPTION_KEYS"}
    return subprocess.run([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


async def test_the_server_and_the_store_hold_none_of_the_runs_content(stack, encrypted_run):
    # A control: a run's input is in all three in plain text when no key encrypts it, so
    # the searches below can find what is there.
    control = f"control-{uuid.uuid4().hex[:10]}"
    handle = await stack.plain.start_workflow(names.AGENT_RUN, {"task": control}, id=control,
                                              task_queue=f"nobody-{control}")
    assert control in await history_text(handle)

    raw = await history_text(stack.plain.get_workflow_handle(encrypted_run.workflow_id))
    assert base64.b64encode(b"binary/encrypted").decode() in raw  # metadata stays base64 there
    # The database: give the server a moment to write what it holds to its file.
    await asyncio.sleep(1)
    database = b"".join(p.read_bytes() for p in stack.data.glob("temporal.db*"))
    assert control.encode() in database
    store = [p.read_bytes() for p in (stack.data / "store").rglob("*") if p.is_file()]
    assert len(store) >= 3 and all(blob.startswith(MAGIC) for blob in store)
    for secret in encrypted_run.secrets:
        assert secret not in raw, f"{secret} is in the raw history"
        assert secret.encode() not in database, f"{secret} is in the server's database"
        assert not any(secret.encode() in blob for blob in store), f"{secret} is in the store"
    # ...and the store does hold them, for whoever has the key.
    keyed_store = sealed(open_blobs(file_url(stack.data / "store")), KeyRing.parse(KEY_A))
    opened = b"".join(keyed_store.get(p.parent.name + p.name)
                      for p in (stack.data / "store").rglob("*") if p.is_file())
    assert all(secret.encode() in opened for secret in encrypted_run.secrets)
    await handle.terminate("control done")


async def test_the_cli_reads_an_encrypted_run_with_the_keys_and_says_which_key_is_missing(
        stack, encrypted_run):
    env = {"TEMPORAL_ADDRESS": stack.address}
    shown = tether_cli("status", encrypted_run.workflow_id, "--json",
                       env={**env, "TETHER_ENCRYPTION_KEYS": KEY_A})
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "completed"
    # Rotation: the key added in front encrypts from now on; the old one still reads.
    rotated = tether_cli("transcript", encrypted_run.workflow_id, "--json",
                         env={**env, "TETHER_ENCRYPTION_KEYS": f"{KEY_B},{KEY_A}"})
    assert rotated.returncode == 0, rotated.stderr
    assert encrypted_run.secrets[2] in rotated.stdout

    missing = tether_cli("status", encrypted_run.workflow_id,
                         env={**env, "TETHER_ENCRYPTION_KEYS": KEY_B})
    assert missing.returncode == 2
    assert "encrypted with key 'key-a', which TETHER_ENCRYPTION_KEYS does not hold" in missing.stderr
    wrong = tether_cli("status", encrypted_run.workflow_id,
                       env={**env, "TETHER_ENCRYPTION_KEYS": OTHER_A})
    assert wrong.returncode == 2 and "can't be decrypted with key 'key-a'" in wrong.stderr
    none = tether_cli("status", encrypted_run.workflow_id, env=env)
    assert none.returncode == 2 and "the run's data is encrypted" in none.stderr
    for output in (missing, wrong, none):
        assert "Traceback" not in output.stderr
        for key in (KEY_A, KEY_B, OTHER_A):
            assert key.partition(":")[2] not in output.stdout + output.stderr


async def test_a_failure_message_is_encrypted_too(stack):
    marker = uuid.uuid4().hex[:10]
    client = await tether_client.connect(keyed(KEY_A), address=stack.address)
    # An unknown tool fails the run at start, with a message that names the input's tool.
    handle = await tether_client.start_run(
        client, scripted_run("fail", turn("done"), tools=[f"tool_{marker}"]),
        task_queue=stack.queue, workflow_id=f"enc-fail-{marker}")
    with pytest.raises(Exception) as raised:
        await handle.result()
    assert f"tool_{marker}" in str(raised.value.__cause__ or raised.value)
    raw = await history_text(stack.plain.get_workflow_handle(handle.id))
    assert "Encoded failure" in raw and f"tool_{marker}" not in raw


async def test_temporal_workflow_show_with_the_codec_servers_token_shows_plaintext(stack, encrypted_run):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "codec-server", "--port", str(port)], cwd=ROOT,
        env={**os.environ, "TETHER_ENCRYPTION_KEYS": KEY_A, "TETHER_CODEC_TOKEN": CODEC_TOKEN},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if embedded.answers(f"127.0.0.1:{port}"):
                break
            await asyncio.sleep(0.1)
        show = [embedded.temporal_binary(), "workflow", "show", "--address", stack.address,
                "-w", encrypted_run.workflow_id, "--detailed"]
        without = subprocess.run(show, capture_output=True, text=True, timeout=60)
        through = [*show, "--codec-endpoint", f"http://127.0.0.1:{port}"]
        no_token = subprocess.run(through, capture_output=True, text=True, timeout=60)
        decoded = subprocess.run([*through, "--codec-auth", f"Bearer {CODEC_TOKEN}"],
                                 capture_output=True, text=True, timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert decoded.returncode == 0, decoded.stderr
    for secret in (encrypted_run.secrets[0], encrypted_run.secrets[2]):
        assert secret in decoded.stdout
        assert secret not in without.stdout
        assert secret not in no_token.stdout
    assert no_token.returncode != 0  # refused (401); the CLI retries until its deadline


# --- rotation with a real worker (last: it rekeys the module's store) -------------------

async def test_a_rekey_while_a_run_goes_on_lets_the_old_key_be_removed(stack, encrypted_run):
    rotated = f"{KEY_B},{KEY_A}"

    async def worker_with(keys: str, queue: str) -> WorkerProcess:
        worker = WorkerProcess(stack.plain, task_queue=queue, worker_id=queue,
                               log_file=stack.data / f"{queue}.log",
                               env={**stack.env, "TETHER_TASK_QUEUE": queue, "TETHER_ENCRYPTION_KEYS": keys})
        await worker.start()
        return worker

    marker = uuid.uuid4().hex[:8]
    worker = await worker_with(rotated, f"rot-{marker}")
    try:
        client = await tether_client.connect(keyed(rotated), address=stack.address)
        handle = await tether_client.start_run(
            client, scripted_run("rekeyed under me", turn("wait", shell="sleep 3; echo slept"),
                                 turn("done {{last_output}}")),
            task_queue=worker.task_queue, workflow_id=f"rot-{marker}")
        rekeyed = await asyncio.to_thread(
            tether_cli, "store", "rekey", "--json",
            env={"TETHER_STORE_DIR": stack.env["TETHER_STORE_DIR"], "TETHER_ENCRYPTION_KEYS": rotated})
        result = await handle.result()
    finally:
        await worker.stop()
    assert rekeyed.returncode == 0, rekeyed.stderr
    report = json.loads(rekeyed.stdout)
    assert report["rekeyed"] >= 3 and report["unreadable"] == []
    assert result.status == "completed" and result.output.strip() == "done slept"

    # The old key removed: a new run's first node is the same blob the first run wrote
    # under key-a, and it loads; so does every blob of the old run.
    worker = await worker_with(KEY_B, f"new-{marker}")
    try:
        client = await tether_client.connect(keyed(KEY_B), address=stack.address)
        fresh = await tether_client.run(client, scripted_run("after key-a is gone", turn("fine")),
                                        task_queue=worker.task_queue, workflow_id=f"new-{marker}")
    finally:
        await worker.stop()
    assert fresh.status == "completed", fresh
    only_b = sealed(open_blobs(file_url(stack.data / "store")), KeyRing.parse(KEY_B))
    opened = b"".join(only_b.get(p.parent.name + p.name)
                      for p in (stack.data / "store").rglob("*") if p.is_file())
    assert all(secret.encode() in opened for secret in encrypted_run.secrets)
