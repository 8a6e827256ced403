"""What the egress proxy costs a tool, against the host fetching directly in the same run.

One client script (`CLIENT`, standard library only) is run three ways: in a sandbox whose
network allows one HTTPS server on the host's loopback, where it goes the way every tool goes
(the proxy variables: the listener the executor made on the sandbox's loopback and handed
to the host's proxy, which accepts on it, a CONNECT tunnel); on the host through a listener
handed over the same way, with no sandbox; and on the host with no proxy, straight to the
same server (the baseline: a tool in a sandbox has no direct way to compare with). The
script times itself, so no side counts how it was started. Each request opens a connection
of its own (as a tool's `urllib` or `pip` does), so the tunnel's setup is in every figure.
The ways alternate in rounds, so all see the same machine.

- Added latency per HTTPS request: p50 of 200 through the proxy, goal at most 2 ms above the
  direct p50.
- A 256 MiB download over HTTPS: time through the proxy, goal at most twice the direct time
  (at least half the direct throughput).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from tether.contracts import SandboxSpec
from tether.egress.proxy import SOCKET_NAME, EgressProxy, default_python
from tether.sandbox.engine import connect_engine
from tether.sandbox.manager import LABEL_MANAGED, LABEL_WORKER, SandboxManager
from tether.sandbox.workspace import put_file

from bench.report import Report
from tests.egress.servers import http_server, make_ca

HOST = "127.0.0.2"
"""The host's loopback, but not a name the sandbox's NO_PROXY keeps from the proxy."""
REQUESTS = 200
ROUNDS = 4
WARMUP = 5
DOWNLOAD_MB = 256
DOWNLOADS = 3
ADDED_MS_GOAL = 2.0

CLIENT = """
import json, ssl, sys, time, urllib.request
url, ca, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = ssl.create_default_context(cafile=ca)
times = []
for _ in range(count):
    started = time.perf_counter()
    with urllib.request.urlopen(url, context=context, timeout=120) as response:
        size = 0
        while block := response.read(1 << 20):
            size += len(block)
    times.append(time.perf_counter() - started)
print(json.dumps({"seconds": times, "bytes": size}))
"""

LISTENER = """
import sys, threading
from tether.sandbox.image.executor.egress import open_egress
print(open_egress(sys.argv[1], 0), flush=True)
threading.Event().wait()
"""


async def in_sandbox(sandboxes: SandboxManager, container_id: str, *args: str) -> dict[str, object]:
    result = await sandboxes.run_tool(
        container_id, tool="shell", arguments={"command": " ".join(["python3 client.py", *args])},
        key=uuid.uuid4().hex, timeout_s=600, limit_bytes=1 << 20)
    assert result.exit_code == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


async def on_host(script: Path, *args: str, proxy: str | None = None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    if proxy is not None:
        env["HTTPS_PROXY"] = proxy
    done = await asyncio.to_thread(subprocess.run, [sys.executable, str(script), *args], env=env,
                                   capture_output=True, text=True, check=True, timeout=600)
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


@contextlib.asynccontextmanager
async def listener_process(socket_path: str) -> AsyncIterator[str]:
    """The executor's listener for the run's tools, made and handed to the proxy by a process
    of its own on the host (in the benchmark's process it would share the interpreter with
    the server): the proxy's path without the sandbox, which tells the sandbox's share of the
    cost from the proxy's."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LISTENER, socket_path, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        await process.wait()


def seconds(answer: dict[str, object]) -> list[float]:
    times = answer["seconds"]
    assert isinstance(times, list)
    return [float(t) for t in times]


async def run(report: Report) -> None:
    sandboxes = SandboxManager(await asyncio.to_thread(connect_engine))
    proxy = EgressProxy(python=default_python())
    worker = f"bench-{uuid.uuid4().hex[:8]}"
    name = f"tether-bench-{uuid.uuid4().hex[:12]}"
    proxied: list[float] = []
    host_proxied: list[float] = []
    direct: list[float] = []
    through: list[float] = []
    host_through: list[float] = []
    straight: list[float] = []
    with tempfile.TemporaryDirectory() as root:
        tls, ca = make_ca(Path(root))
        script = Path(root) / "client.py"
        script.write_text(CLIENT)
        try:
            async with contextlib.AsyncExitStack() as stack:
                port = stack.enter_context(http_server(tls, host=HOST))
                spec = SandboxSpec(network={"allow": [f"{HOST}:{port}"]})
                directory = await proxy.open(name, spec.network)
                container = await asyncio.to_thread(
                    sandboxes.create, spec, {LABEL_MANAGED: "1", LABEL_WORKER: worker}, name=name,
                    egress_dir=directory)
                proxy.made(name, container.id)
                for path, data in (("client.py", CLIENT.encode()), ("ca.pem", ca.read_bytes())):
                    await asyncio.to_thread(put_file, sandboxes, container.id, path, data)
                # A run of its own: a run's socket takes one listener, the sandbox's.
                alone = await proxy.open(f"{name}-host", spec.network)
                host_proxy = await stack.enter_async_context(
                    listener_process(os.path.join(alone, SOCKET_NAME)))
                hello = f"https://{HOST}:{port}/hello"
                await in_sandbox(sandboxes, container.id, hello, "ca.pem", str(WARMUP))
                await on_host(script, hello, str(ca), str(WARMUP), proxy=host_proxy)
                await on_host(script, hello, str(ca), str(WARMUP))
                for _ in range(ROUNDS):
                    each = str(REQUESTS // ROUNDS)
                    proxied += seconds(await in_sandbox(sandboxes, container.id, hello, "ca.pem", each))
                    host_proxied += seconds(await on_host(script, hello, str(ca), each, proxy=host_proxy))
                    direct += seconds(await on_host(script, hello, str(ca), each))
                big = f"https://{HOST}:{port}/bytes/{DOWNLOAD_MB}"
                for _ in range(DOWNLOADS):
                    answers = (await in_sandbox(sandboxes, container.id, big, "ca.pem", "1"),
                               await on_host(script, big, str(ca), "1", proxy=host_proxy),
                               await on_host(script, big, str(ca), "1"))
                    assert all(answer["bytes"] == DOWNLOAD_MB << 20 for answer in answers)
                    for kept, answer in zip((through, host_through, straight), answers, strict=True):
                        kept += seconds(answer)
        finally:
            for leftover in await asyncio.to_thread(sandboxes.managed, **{LABEL_WORKER: worker}):
                await asyncio.to_thread(sandboxes.remove, leftover.id)
            await proxy.close(name)
            await proxy.close(f"{name}-host")
            await proxy.stop()
            sandboxes.engine.close()

    p50, host_p50, baseline = (statistics.median(t) * 1000 for t in (proxied, host_proxied, direct))
    report.figure(
        f"HTTPS request from a sandbox through the egress proxy, p50 of {REQUESTS}", p50, "ms",
        goal=f"≤ direct + {ADDED_MS_GOAL:g} ms", met=p50 - baseline <= ADDED_MS_GOAL,
        baseline_name="the host straight to the server", baseline=baseline)
    report.figure("added by the proxy's path, per HTTPS request (p50 difference)", p50 - baseline, "ms")
    report.figure(f"HTTPS request from the host through the proxy, no sandbox, p50 of {REQUESTS}",
                  host_p50, "ms", baseline_name="the host straight to the server", baseline=baseline)
    download_s, host_s, direct_s = (statistics.median(t) for t in (through, host_through, straight))
    report.figure(
        f"{DOWNLOAD_MB} MiB HTTPS download from a sandbox through the egress proxy, p50 of {DOWNLOADS}",
        download_s, "s",
        baseline_name="the host straight to the server", baseline=direct_s, at_most=2.0)
    report.figure(f"{DOWNLOAD_MB} MiB HTTPS download from the host through the proxy, no sandbox, p50",
                  host_s, "s", baseline_name="the host straight to the server", baseline=direct_s)
    # Throughputs without a ratio: the table's ratio reads "smaller is better".
    for where, took in (("from a sandbox through the proxy", download_s),
                        ("from the host through the proxy", host_s), ("straight from the host", direct_s)):
        report.figure(f"download throughput {where}", DOWNLOAD_MB / took, "MiB/s")
