"""The Temporal Web UI as a person sees it: five runs (completed, waiting for approval, out of
budget, failed, and one whose sub-agent waits for approval) on a dev server of this script's
own with its UI on, each run's page opened in headless Chromium (Debian's `chromium`,
installed with apt when missing), checked for its step summaries and current details (and
the last, its children), and screenshotted into docs/.

    .venv/bin/python scripts/webui_check.py [--out docs] [--no-screenshots]

`tests/test_webui.py` runs it; it prints one JSON line per page, and exits 1 when a page
lacks what it should show.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the suite's run builders and worker process

from temporalio.client import Client  # noqa: E402
from tether import client as tether  # noqa: E402
from tether.embedded import temporal as embedded  # noqa: E402

from tests.helpers import free_port  # noqa: E402
from tests.scripts import scripted_run, turn  # noqa: E402
from tests.workflows.worker_process import WorkerProcess  # noqa: E402


class NoBrowser(RuntimeError):
    pass


def chromium() -> str:
    """Debian's chromium, installed with apt-get when it is missing (as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise NoBrowser("no `chromium`, and apt-get can't install it here (needs root on Debian)")
    done = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True,
                          text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("chromium")
    if done.returncode != 0 or not found:
        raise NoBrowser(f"apt-get install chromium failed: {done.stderr.strip()[-300:]}")
    return found


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
    NUL-separated JSON on fds 3 and 4), so no websocket library is needed. A page is read after
    a wait of real time: the Web UI keeps long polls open on a running workflow, which stalls
    `--virtual-time-budget` forever."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="tether-chromium-")
        commands_read, self.commands = os.pipe()
        self.replies, replies_write = os.pipe()

        def wire_pipes() -> None:
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        self.process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=wire_pipes, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(commands_read)
        os.close(replies_write)
        self.buffer = b""
        self.next_id = 0

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.replies, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self.buffer += chunk
            raw, _, self.buffer = self.buffer.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})  # type: ignore[no-any-return]

    def page(self, url: str, *, screenshot: Path | None, expect: list[str],
             wait_seconds: float = 30) -> str:
        """The text a person would read on the page at `url`, once it shows all of `expect`
        (the Web UI fills its panels in as its requests return) or after `wait_seconds`."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", session, width=1440, height=1300,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.enable", session)
        self.call("Page.navigate", session, url=url)
        deadline = time.monotonic() + wait_seconds
        while True:
            time.sleep(1)
            text = self.text(session)
            if all(wanted in text for wanted in expect) or time.monotonic() > deadline:
                break
        time.sleep(1)  # the last panel's layout
        if screenshot is not None:
            shot = self.call("Page.captureScreenshot", session, format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        self.call("Target.closeTarget", targetId=target)
        return text

    def text(self, session: str) -> str:
        """The page's text and its frames': the Web UI renders Markdown (the run's details) in
        a sandboxed iframe, which the page's own innerText leaves out."""
        tree = self.call("Page.getFrameTree", session)["frameTree"]
        frames, texts = [tree], []
        while frames:
            frame = frames.pop()
            frames += frame.get("childFrames", [])
            try:
                world = self.call("Page.createIsolatedWorld", session, frameId=frame["frame"]["id"],
                                  worldName="webui-check")["executionContextId"]
                value = self.call("Runtime.evaluate", session, contextId=world, returnByValue=True,
                                  expression="document.body ? document.body.innerText : ''")
            except RuntimeError:
                continue  # a frame that went away while it was read
            texts.append(str(value["result"].get("value", "")))
        return "\n".join(texts)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        os.close(self.commands)
        os.close(self.replies)
        shutil.rmtree(self.profile, ignore_errors=True)


async def make_runs(client: Client, queue: str) -> dict[str, tuple[str, list[str], list[str]]]:
    """The five runs, each left in its state; with what its timeline and its details must show."""
    tag = uuid.uuid4().hex[:6]
    completed = await tether.start_run(client, scripted_run(
        "Count the primes below 100 and report the figure",
        turn("Counting in the sandbox.", python="print(len([n for n in range(2, 100) "
             "if all(n % d for d in range(2, n))]))"),
        turn("There are {{last_output}} primes below 100.")),
        workflow_id=f"webui-completed-{tag}", task_queue=queue)
    await completed.result()
    waiting = await tether.start_run(client, scripted_run(
        "Clean the build directory",
        turn("I will remove the build output.", shell="rm -rf /workspace/build && echo cleaned"),
        turn("{{last_output}}"), approval={"tools": ["shell"]}),
        workflow_id=f"webui-waiting-{tag}", task_queue=queue)
    exhausted = await tether.start_run(client, scripted_run(
        "Keep exploring the file system", turn("Looking.", shell="ls /"), turn("More.", shell="ls /usr"),
        turn("done"), budget={"max_steps": 2}),
        workflow_id=f"webui-exhausted-{tag}", task_queue=queue)
    await exhausted.result()
    failed = await tether.start_run(client, scripted_run(
        "Run the tests in a sandbox image that does not exist",
        turn("Running them.", shell="pytest"), turn("done"),
        sandbox={"image": f"tether-no-such-image:{tag}"}),
        workflow_id=f"webui-failed-{tag}", task_queue=queue)
    try:
        await failed.result()
    except Exception:
        pass  # failing is what it is for
    parent = await tether.start_run(client, scripted_run(
        "Check the release: one sub-agent counts the files, one cleans up",
        {"text": "Handing both parts on.", "tool_calls": [
            sub_agent("Count the files in /etc", turn(shell="ls /etc | wc -l"),
                      turn("{{last_output}} files")),
            sub_agent("Clean the build directory", turn("I will remove the build output.",
                                                        shell="rm -rf /workspace/build && echo cleaned"),
                      turn("{{last_output}}"), approval={"tools": ["shell"]})]},
        turn("{{last_output}}"), agents={"max_depth": 2, "max_children": 4}),
        workflow_id=f"webui-sub-agents-{tag}", task_queue=queue)
    for _ in range(100):
        if ((await tether.get_status(client, waiting.id)).pending_approvals
                and (await tether.get_status(client, parent.id)).children_waiting):
            break
        await asyncio.sleep(0.2)
    return {
        # The call ran on the worker that runs the workflow: a local activity, which the
        # timeline names by its type (its marker holds the summary).
        "completed": (completed.id, ["step 1 · scripted", "tool_call_here"],
                      ["completed", "Count the primes below 100"]),
        "awaiting_approval": (waiting.id, ["step 1 · scripted"],
                              ["awaiting_approval", f"tether approve {waiting.id} 1-0",
                               "rm -rf /workspace/build"]),
        "budget_exhausted": (exhausted.id, ["step 2 · scripted"], ["budget_exhausted", "steps: 2 of 2"]),
        "failed": (failed.id, ["step 1 · scripted"], ["failed", "tether-no-such-image"]),
        "sub_agents": (parent.id, ["step 1 · scripted", f"{parent.id}.delegate-1-0"],
                       ["awaiting_approval", "Sub-agents waiting for approval",
                        f"tether approve {parent.id}.delegate-1-1 1-0"]),
    }


def sub_agent(task: str, *turns: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A `delegate` call whose sub-agent plays `turns`."""
    return {"name": "delegate", "arguments": {
        "task": task, "model": {"provider": "scripted", "script": {"turns": list(turns)}}, **more}}


async def check(out: Path | None) -> list[dict[str, Any]]:
    browser = Browser(chromium())
    port, ui_port = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="tether-webui-"))
    server = embedded.start(port=port, ui_port=ui_port, db_file=None, log_file=data / "temporal.log")
    os.environ["TEMPORAL_ADDRESS"] = f"127.0.0.1:{port}"
    os.environ["TETHER_DATA_DIR"] = str(data)
    client = await tether.connect(address=f"127.0.0.1:{port}")
    queue = f"webui-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(client, task_queue=queue, worker_id=queue, log_file=data / "worker.log")
    pages = []
    try:
        await worker.start()
        runs = await make_runs(client, queue)
        await asyncio.sleep(1)  # the UI reads the dev server's visibility
        for name, (workflow_id, steps, details) in runs.items():
            # The timeline holds the steps' summaries; the User Metadata tab the run's summary
            # and current details.
            run_id = (await client.get_workflow_handle(workflow_id).describe()).run_id
            url = f"http://localhost:{ui_port}/namespaces/default/workflows/{workflow_id}/{run_id}"
            shot = out / f"webui-{name}.png" if out else None
            timeline = out / "webui-timeline.png" if out and name == "completed" else None
            dom = (await asyncio.to_thread(browser.page, f"{url}/timeline", screenshot=timeline,
                                           expect=steps)
                   + await asyncio.to_thread(browser.page, f"{url}/user-metadata", screenshot=shot,
                                             expect=details))
            if name == "sub_agents":  # the parent's children, as the Web UI draws them
                dom += await asyncio.to_thread(
                    browser.page, f"{url}/relationships", expect=[f"{workflow_id}.delegate-1-1"],
                    screenshot=out / "webui-sub_agents-relationships.png" if out else None)
                details.append(f"{workflow_id}.delegate-1-1")
            if os.environ.get("TETHER_WEBUI_DOM"):  # for looking at what the page held
                Path(os.environ["TETHER_WEBUI_DOM"], f"{name}.html").write_text(dom)
            missing = [text for text in [*steps, *details] if text not in dom]
            pages.append({"run": name, "workflow_id": workflow_id, "url": url,
                          "screenshot": str(shot) if shot else None,
                          "missing": missing, "no_summary": "No summary available" in dom})
        await tether.cancel(client, runs["awaiting_approval"][0], "checked")
        await tether.cancel(client, runs["sub_agents"][0], "checked")
    finally:
        await worker.stop()
        browser.close()
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args()
    try:
        pages = asyncio.run(check(None if args.no_screenshots else args.out))
    except NoBrowser as error:
        print(json.dumps({"skipped": str(error)}))
        return 3
    for page in pages:
        print(json.dumps(page))
    return 1 if any(page["missing"] or page["no_summary"] for page in pages) else 0


if __name__ == "__main__":
    sys.exit(main())
