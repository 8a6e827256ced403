"""A cold load of a 200-message conversation from an S3 store (SeaweedFS on 127.0.0.1), as
a worker that has not seen the run reads it: nodes that name their ancestors, read 32 at a
time, against nodes written before they did, read one a message (the way every load went
before). Straight to the server, and through a proxy that holds each answer 10 ms, as a
store in another zone would."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from tether.contracts import Message
from tether.store import ContentAddressed, Conversations, open_store

from bench.report import Report
from tests.s3_server import SeaweedS3
from tests.slow_proxy import SlowProxy

MESSAGES = 200
ROUNDS = 5
LATENCY_S = 0.01


def conversation() -> list[Message]:
    return [Message(role="assistant" if i % 2 else "user", content=f"message {i}: " + "x" * 200)
            for i in range(MESSAGES)]


def written_one_a_message(store: ContentAddressed, messages: list[Message]) -> str:
    """The nodes as tether wrote them before they named their ancestors."""
    head = None
    for message in messages:
        head = store.put(json.dumps({"parent": head, "message": message.model_dump(
            mode="json", exclude_defaults=True)}, sort_keys=True, separators=(",", ":")).encode())
    assert head is not None
    return head


async def cold_load_ms(url: str, head: str, messages: list[Message]) -> float:
    store = open_store(url)
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        loaded = await Conversations(store).load_async(head)
        times.append((time.perf_counter() - started) * 1000)
        assert loaded == messages
    return statistics.median(times)


async def run(report: Report) -> None:
    with tempfile.TemporaryDirectory() as root:
        server = SeaweedS3(Path(root))
        server.start(bucket="tether")
        saved = {key: os.environ.get(key) for key in server.env()}
        try:
            os.environ.update(server.env())
            url = f"s3://tether/bench-{uuid.uuid4().hex[:8]}"
            messages = conversation()
            batched = Conversations(open_store(url)).append(None, messages)
            assert batched is not None
            single = written_one_a_message(open_store(url), messages)
            upstream = urlsplit(server.endpoint)
            with SlowProxy((str(upstream.hostname), int(upstream.port or 80)), delay_s=LATENCY_S) as proxy:
                for where, endpoint, at_most in (("on loopback", server.endpoint, 1.5),
                                                 (f"{LATENCY_S * 1000:g} ms away", proxy.endpoint, 0.25)):
                    os.environ["AWS_ENDPOINT_URL"] = endpoint
                    before = await cold_load_ms(url, single, messages)
                    after = await cold_load_ms(url, batched, messages)
                    report.figure(f"cold load of {MESSAGES} messages, store {where}", after, "ms",
                                  baseline_name="one read a message", baseline=before, at_most=at_most)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            server.stop()
