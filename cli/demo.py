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
from tether import client
from tether.cli.render import print_result
from tether.contracts import AgentRunInput
from tether.embedded import temporal as embedded
from tether.settings import TetherSettings
from tether.worker import serve

TASK = "How many primes are there below one million, and what is their sum?"


async def run_demo(script_path: Path, console: Console, settings: TetherSettings) -> int:
    was_running = embedded.answers(settings.temporal_address)
    with console.status("starting the Temporal dev server"):
        address = embedded.ensure_running(settings)
    console.print(f"[green]✓[/] Temporal at {address}"
                  + ("" if was_running else f" (embedded; web UI http://localhost:{settings.ui_port})"))
    connection = await client.connect(settings, address=address)
    stop = asyncio.Event()
    worker = asyncio.create_task(serve(connection, stop, settings=settings))
    console.print(f"[green]✓[/] worker {settings.worker_id} serving '{settings.task_queue}'")
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
                    now = await client.get_status(connection, handle.id)
                    spinner.update(f"the agent is working · step {now.step} · {now.state}")
                except Exception:  # the status query races the run's end; the result says it all
                    pass
            result = result_task.result()
        print_result(console, result, {
            "workflow_id": handle.id,
            "ui": settings.ui_link(handle.id),
            "show": f".venv/bin/temporal workflow show -w {handle.id}",
        })
        if not was_running:
            console.print("[dim]The dev server keeps running for the web UI; "
                          "stop it with `.venv/bin/tether stop-server`.[/]")
        return 0 if result.status == "completed" else 1
    finally:
        stop.set()
        await worker
