"""Store calls in async activities wait without holding the event loop, so heartbeats and
other activities go on while a slow store answers; and a cold load reads a conversation's
nodes many at a time instead of one round trip per message. The store is the real S3 server
behind a proxy on 127.0.0.1 that holds back each answer, as a far or loaded store would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from itertools import pairwise
from urllib.parse import urlsplit

import pytest
from temporalio.testing import ActivityEnvironment
from tether.activities.model import ModelActivities
from tether.contracts import Message, ModelCallInput, ModelSpec
from tether.store import Conversations, open_store

from tests.helpers import providers
from tests.s3_server import SeaweedS3, s3_server_fixture  # noqa: F401  (the fixture)
from tests.slow_proxy import SlowProxy

SCRIPTED = ModelSpec.model_validate({"provider": "scripted", "script": {"turns": [{"text": "done"}]}})


@pytest.fixture
def url(s3_server: SeaweedS3) -> str:
    return f"s3://tether/tests-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def slow_down(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[Callable[[float], SlowProxy]]:
    """Puts the S3 server behind a proxy that holds back every answer `delay_s`: stores
    opened after that go through it."""
    with ExitStack() as stack:
        def slow_down(delay_s: float) -> SlowProxy:
            upstream = urlsplit(s3_server.endpoint)
            proxy = stack.enter_context(SlowProxy((str(upstream.hostname), int(upstream.port or 80)),
                                                  delay_s=delay_s))
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
            return proxy

        yield slow_down


def written(url: str, count: int) -> tuple[str, list[Message]]:
    """A conversation of `count` messages written straight to the S3 server."""
    messages = [Message(role="user", content=f"message {i}") for i in range(count)]
    head = Conversations(open_store(url)).append(None, messages)
    assert head is not None
    return head, messages


async def test_a_slow_store_read_leaves_the_event_loop_free_for_heartbeats(
    url: str, slow_down: Callable[[float], SlowProxy],
):
    head, _ = written(url, 3)
    proxy = slow_down(0.4)
    activities = ModelActivities(conversations=Conversations(open_store(url)), providers=providers())
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        output = await ActivityEnvironment().run(activities.call_model, ModelCallInput(
            workflow_id="wf-slow-store", step=1, model=SCRIPTED, head=head))
    finally:
        ticking.cancel()
    took = time.monotonic() - started
    assert output.text == "done" and proxy.answers >= 3
    # Each answer waits 0.4 s: a loop held through one read would stand still that long.
    assert took >= 0.8, "the store was not slow: the test proves nothing"
    gaps = [later - earlier for earlier, later in pairwise(ticks)]
    assert max(gaps) < 0.3, f"the event loop stood still {max(gaps):.2f} s of a {took:.2f} s call"


async def test_a_cold_load_reads_a_conversations_nodes_many_at_a_time(
    url: str, slow_down: Callable[[float], SlowProxy],
):
    head, messages = written(url, 100)
    slow_down(0.1)
    started = time.monotonic()
    loaded = await Conversations(open_store(url)).load_async(head)
    took = time.monotonic() - started
    assert loaded == messages
    # One node a round trip would take 100 x 0.1 s; a batch of them a round trip, a few tenths.
    assert took < 2.5, f"a cold load of 100 messages took {took:.2f} s"
