"""`tether store rekey`: rotate k1 → k2, rekey, remove k1, and every conversation still loads.

Blobs are named by their plaintext digest and written create-only, so a blob first written
under k1 stays under k1: a new run's first node (the default system prompt) is the same blob
as every earlier run's. Rekey rewrites each blob not under the current key, in place and
whole. Checked on a directory and on a real S3 server (SeaweedFS), interrupted part way,
killed with SIGKILL mid-write, and while a writer and readers work on the same store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from tether.contracts.messages import Message
from tether.encryption import DecryptionError, KeyRing
from tether.store import ContentAddressed, Conversations, open_blobs
from tether.store.backends import ObjectBlobs, file_url
from tether.store.rekey import RekeyCounts, rekey
from tether.store.sealed import MAGIC, sealed

from tests.s3_server import SeaweedS3, s3_server_fixture  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]
K1 = KeyRing.generate("k1")
K2 = KeyRing.generate("k2")
SYSTEM = Message(role="system", content="You are a careful agent.")


def conversations(blobs: ObjectBlobs, keys: str) -> Conversations:
    return Conversations(ContentAddressed(sealed(blobs, KeyRing.parse(keys))))


def key_of(blobs: ObjectBlobs, digest: str) -> str | None:
    stored = blobs.get(digest)
    return stored[len(MAGIC) + 1:len(MAGIC) + 1 + stored[len(MAGIC)]].decode() \
        if stored.startswith(MAGIC) else None


def keys_held(blobs: ObjectBlobs) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for digest in blobs.digests():
        counts[key_of(blobs, digest)] = counts.get(key_of(blobs, digest), 0) + 1
    return counts


@pytest.fixture(params=["file", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectBlobs:
    if request.param == "file":
        return open_blobs(file_url(tmp_path / "store"))
    request.getfixturevalue("s3_server")
    return open_blobs(f"s3://tether/rekey-{uuid.uuid4().hex[:8]}")


def test_after_rotating_and_rekeying_the_old_key_can_be_removed(blobs: ObjectBlobs):
    old = conversations(blobs, K1).append(None, [SYSTEM, Message(role="user", content="old task")])
    plain = ContentAddressed(blobs).put(b"a file from before the keys")
    rotated = f"{K2},{K1}"
    new = conversations(blobs, rotated).append(None, [SYSTEM, Message(role="user", content="new task")])
    # The new run's first node is the old run's: still under k1, so k1 can't go yet.
    with pytest.raises(DecryptionError, match="key 'k1'"):
        conversations(blobs, K2).load(new)

    counts = rekey(blobs, KeyRing.parse(rotated))
    # The system prompt and the old task under k1, the file from before the keys under none.
    assert counts == RekeyCounts(blobs=4, rekeyed=3, current=1)
    assert keys_held(blobs) == {"k2": 4}
    only_k2 = conversations(blobs, K2)
    assert [m.content for m in only_k2.load(old)] == [SYSTEM.content, "old task"]
    assert [m.content for m in only_k2.load(new)] == [SYSTEM.content, "new task"]
    assert ContentAddressed(sealed(blobs, KeyRing.parse(K2))).get(plain) == b"a file from before the keys"
    # Run again: nothing left to do.
    assert rekey(blobs, KeyRing.parse(rotated)) == RekeyCounts(blobs=4, rekeyed=0, current=4)


def test_a_blob_no_key_opens_is_reported_and_the_rest_are_rekeyed(blobs: ObjectBlobs):
    lost = ContentAddressed(sealed(blobs, KeyRing.parse(KeyRing.generate("gone")))).put(b"lost")
    kept = ContentAddressed(sealed(blobs, KeyRing.parse(K1))).put(b"kept")
    counts = rekey(blobs, KeyRing.parse(f"{K2},{K1}"))
    assert counts.rekeyed == 1 and counts.current == 0
    [(digest, problem)] = counts.unreadable
    assert digest == lost and "key 'gone'" in problem
    assert key_of(blobs, kept) == "k2" and key_of(blobs, lost) == "gone"


def test_a_rekey_interrupted_part_way_leaves_every_blob_readable_and_a_second_run_finishes(
        blobs: ObjectBlobs):
    heads = [conversations(blobs, K1).append(None, [Message(role="user", content=f"task {i}")])
             for i in range(12)]
    rotated = KeyRing.parse(f"{K2},{K1}")

    def interrupt_after_five(counts: RekeyCounts) -> None:
        if counts.rekeyed == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rekey(blobs, rotated, progress=interrupt_after_five)
    assert keys_held(blobs) == {"k1": 7, "k2": 5}
    reader = conversations(blobs, f"{K2},{K1}")
    assert [reader.load(head)[0].content for head in heads] == [f"task {i}" for i in range(12)]
    assert rekey(blobs, rotated) == RekeyCounts(blobs=12, rekeyed=7, current=5)
    assert keys_held(blobs) == {"k2": 12}


def test_rekey_while_a_worker_writes_and_runs_read_the_same_store(blobs: ObjectBlobs):
    rotated = f"{K2},{K1}"
    heads = [conversations(blobs, K1).append(None, [SYSTEM, Message(role="user", content=f"old {i}")])
             for i in range(40)]
    stop = threading.Event()
    problems: list[BaseException] = []
    written: list[str | None] = []

    def forever(step: Callable[[int], None]) -> Callable[[], None]:
        def loop() -> None:
            i = 0
            while not stop.is_set():
                try:
                    step(i)
                except BaseException as error:  # every failure is the test's to report
                    problems.append(error)
                    return
                i += 1
        return loop

    def worker(i: int) -> None:
        # A worker with the new key in front: the shared system prompt node is reused, new
        # nodes are written under k2.
        written.append(conversations(blobs, rotated).append(
            None, [SYSTEM, Message(role="user", content=f"new {i}")]))

    def reader(i: int) -> None:
        loaded = conversations(blobs, rotated).load(heads[i % len(heads)])
        assert loaded[1].content == f"old {i % len(heads)}"

    threads = [threading.Thread(target=forever(worker)), threading.Thread(target=forever(reader)),
               threading.Thread(target=forever(reader))]
    for thread in threads:
        thread.start()
    try:
        counts = rekey(blobs, KeyRing.parse(rotated))
    finally:
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not problems, problems[0]
    assert counts.rekeyed >= 41 and not counts.unreadable
    assert written
    only_k2 = conversations(blobs, K2)
    for head in heads:
        only_k2.load(head)
    for head in written:
        only_k2.load(head)


# --- the command ------------------------------------------------------------------------

def tether(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    return subprocess.Popen([sys.executable, "-m", "tether.cli", *args], cwd=ROOT, env={**clean, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_command_killed_mid_rekey_leaves_every_blob_whole_and_running_it_again_finishes(tmp_path):
    store = tmp_path / "store"
    blobs = open_blobs(file_url(store))
    writer = ContentAddressed(sealed(blobs, KeyRing.parse(K1)))
    # Big enough blobs that a kill lands mid-write of one of them, often.
    digests = [writer.put(os.urandom(64) * 4096 + str(i).encode()) for i in range(400)]
    env = {"TETHER_STORE_DIR": str(store), "TETHER_ENCRYPTION_KEYS": f"{K2},{K1}"}
    first = tether("store", "rekey", "--json", env=env)
    deadline = time.monotonic() + 60
    while sum(1 for d in digests[::10] if key_of(blobs, d) == "k2") < 3:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    held = keys_held(blobs)
    assert held.get("k1", 0) > 0, "the rekey finished before it was killed: make the store bigger"
    reader = ContentAddressed(sealed(blobs, KeyRing.parse(f"{K2},{K1}")))
    for digest in digests:
        reader.get(digest)  # whole, under one key or the other

    second = tether("store", "rekey", "--json", env=env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    report = json.loads(out)
    assert report["key"] == "k2" and report["blobs"] == 400
    assert report["rekeyed"] == held["k1"] and report["current"] == held.get("k2", 0)
    assert report["unreadable"] == []
    assert keys_held(blobs) == {"k2": 400}


def test_the_command_without_keys_says_what_it_needs(tmp_path):
    done = tether("store", "rekey", env={"TETHER_STORE_DIR": str(tmp_path)})
    _, err = done.communicate(timeout=60)
    assert done.returncode == 2
    assert "store rekey needs TETHER_ENCRYPTION_KEYS" in err and "Traceback" not in err


def test_the_command_names_the_blobs_it_could_not_open_and_fails(tmp_path):
    store = tmp_path / "store"
    blobs = open_blobs(file_url(store))
    lost = ContentAddressed(sealed(blobs, KeyRing.parse(KeyRing.generate("gone")))).put(b"lost")
    done = tether("store", "rekey", env={"TETHER_STORE_DIR": str(store), "TETHER_ENCRYPTION_KEYS": K2})
    out, err = done.communicate(timeout=60)
    assert done.returncode == 1
    assert lost[:12] in out + err and "key 'gone'" in out + err
