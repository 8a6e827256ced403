"""`make demo`: one agent run, end to end, on the embedded default.

Starts (or finds) the Temporal dev server, runs a worker in this process, and runs the
scripted demo agent: it writes a program into its sandbox, runs it there, reads what it
wrote, and answers with the figure the container computed.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from rich.console import Console

import client
import settings
from cli import print_result
from embedded import temporal as embedded
from worker import serve
from workflows.types import AgentRunInput

TASK = "How many primes are there below one million, and what is their sum?"


async def run_demo(script_path: Path, console: Console) -> int:
    address = settings.temporal_address()
    was_running = embedded.answers(address)
    with console.status("starting the Temporal dev server"):
        address = embedded.ensure_running()
    console.print(f"[green]✓[/] Temporal at {address}"
                  + ("" if was_running else f" (embedded; web UI http://localhost:{settings.ui_port()})"))
    connection = await client.connect(address)
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(connection, stop))
    console.print(f"[green]✓[/] worker {settings.worker_id()} serving '{settings.task_queue()}'")
    try:
        script = json.loads(script_path.read_text())
        run_input = AgentRunInput.model_validate(
            {"task": TASK, "model": {"provider": "scripted", "script": script},
             "budget": {"max_steps": 10, "max_seconds": 300}})
        handle = await client.start_run(connection, run_input,
                                        workflow_id=f"demo-{int(time.time())}")
        console.print(f"[green]✓[/] started run [bold]{handle.id}[/]")
        with console.status("the agent is working") as spinner:
            result_task = asyncio.ensure_future(handle.result())
            while not result_task.done():
                await asyncio.wait({result_task}, timeout=0.5)
                if worker.done():
                    worker.result()  # the worker died: raise its error here
                try:
                    now = await client.status(connection, handle.id)
                    spinner.update(f"the agent is working · step {now.step} · {now.state}")
                except Exception:  # the status query races the run's end; the result says it all
                    pass
            result = result_task.result()
        print_result(result, {
            "workflow_id": handle.id,
            "ui": settings.ui_url(handle.id),
            "show": f".venv/bin/temporal workflow show -w {handle.id}",
        })
        if not was_running:
            console.print("[dim]The dev server keeps running for the web UI; "
                          "stop it with `.venv/bin/tether stop-server`.[/]")
        return 0 if result.status == "completed" else 1
    finally:
        stop.set()
        await worker
