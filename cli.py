"""The `tether` command: start runs, watch them, and run the worker and dev server."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from tether.display import clipped, literal, print_result
from tether.embedded import temporal as embedded
from tether.settings import TetherSettings, host_and_port

if TYPE_CHECKING:  # imported where used, so that every command starts quickly
    from tether.encryption import KeyRing
    from tether.store.backends import ObjectBlobs
    from tether.store.rekey import RekeyCounts

app = typer.Typer(help="tether: durable, sandboxed, budgeted AI agent runs on Temporal.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)


@functools.cache
def settings() -> TetherSettings:
    """The environment's settings, read once per command, with the address and namespace of
    the Temporal profile in use (tether.connection)."""
    from tether.connection import ConnectionConfigError, resolved
    from tether.encryption import InvalidKeys
    from tether.settings import SettingsError, read_settings

    try:
        return resolved(read_settings())
    except (InvalidKeys, ConnectionConfigError, SettingsError) as error:
        try:
            fail(str(error))
        except typer.Exit:
            # As SystemExit: typer.Exit is a RuntimeError, which a command's `except
            # Exception` would catch, and then ask for the settings (and print this) again.
            raise SystemExit(2) from None


@app.callback()
def _options(
    profile: Annotated[str | None, typer.Option(
        "--profile", metavar="NAME", envvar="TEMPORAL_PROFILE",
        help="The profile of Temporal's client config file (TEMPORAL_CONFIG_FILE) to connect with.")] = None,
) -> None:
    # The same as TEMPORAL_PROFILE, as in the Temporal CLI: set for this process and what it
    # starts (`tether dev`'s worker), where TetherSettings and temporalio.envconfig read it.
    if profile:
        os.environ["TEMPORAL_PROFILE"] = profile


def main() -> None:
    """Runs the CLI, then leaves without interpreter teardown: the Temporal client's Rust
    threads can abort a finishing interpreter ("PyGILState_Release ... finalizing",
    temporalio/sdk-python#300), which would turn a finished command into exit code 134."""
    code: int | str | None = 0
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    os._exit(code or 0)


def fail(message: str, hint: str | None = None) -> NoReturn:
    """Prints an error and leaves with code 2. The message and hint are printed literally:
    they often carry what a run produced (a reason, a call id, a tool's error)."""
    err.print(Text("error: ", "bold red") + literal(message), soft_wrap=True)
    if hint:
        err.print(Text("→ ", "dim") + literal(hint, "dim"), soft_wrap=True)
    raise typer.Exit(2)


def model_option(value: str) -> dict[str, Any] | str:
    """`scripted:FILE` embeds FILE's script; anything else is `provider:name` as given."""
    provider, colon, rest = value.partition(":")
    if not colon:
        guess = "anthropic" if value.startswith("claude") else "openai"
        fail(f"--model {value} names no provider",
             f"did you mean --model {guess}:{value}? (provider:name, with openai, anthropic, "
             "or scripted:FILE)")
    if provider != "scripted":
        return value
    path = Path(rest)
    if not rest or not path.is_file():
        fail(f"--model scripted:FILE needs a script file; {rest or '(none)'} is not one",
             "try --model scripted:examples/demo.json")
    try:
        script = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        fail(f"{path} is not JSON: {error}")
    return {"provider": "scripted", "script": script}


@app.command()
def run(
    task: Annotated[str | None, typer.Argument(
        help="What the agent should do (may come from --input-file instead).")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input-file", help="A whole run input (AgentRunInput, see `tether schema input`) as "
                             "JSON; the task and flags given override its fields.")] = None,
    model: Annotated[str | None, typer.Option(
        help="provider:name, or scripted:FILE. Default: openai:gpt-4o-mini")] = None,
    endpoint: Annotated[str | None, typer.Option(
        help="A model endpoint the worker configures (TETHER_MODEL_ENDPOINTS), by name.")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="A model server of your own, sent no key: only a worker with "
             "TETHER_ALLOW_INPUT_URLS=1 (local development) accepts it.")] = None,
    fallback: Annotated[list[str] | None, typer.Option(
        help="A model that serves a step when the ones before fail (repeat).")] = None,
    tool: Annotated[list[str] | None, typer.Option(help="Enable only these tools (repeat).")] = None,
    max_steps: Annotated[int | None, typer.Option()] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
    max_cost_usd: Annotated[float | None, typer.Option()] = None,
    max_seconds: Annotated[float | None, typer.Option()] = None,
    approve: Annotated[list[str] | None, typer.Option(
        "--approve", metavar="TOOL",
        help="Calls to this tool wait for a person's approval (repeat).")] = None,
    approval_timeout: Annotated[float | None, typer.Option(
        help="Seconds an approval may wait; no decision in time is a denial.")] = None,
    system_prompt: Annotated[str | None, typer.Option(help="The model's system prompt.")] = None,
    image: Annotated[str | None, typer.Option(help="The sandbox image.")] = None,
    cpus: Annotated[float | None, typer.Option(help="The sandbox's CPUs.")] = None,
    memory_mb: Annotated[int | None, typer.Option(help="The sandbox's memory, in MB.")] = None,
    tool_timeout: Annotated[float | None, typer.Option(help="Seconds one tool call may take.")] = None,
    workflow_id: Annotated[str | None, typer.Option("--id", help="Workflow id.")] = None,
    file: Annotated[list[Path] | None, typer.Option(
        help="A file or directory to place in the run's /workspace (repeat).")] = None,
    artifact: Annotated[list[str] | None, typer.Option(
        help="A glob in /workspace to collect when the run ends, e.g. 'out/**' (repeat).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result.")] = False,
    follow: Annotated[bool, typer.Option(
        "--follow", help="Watch the run live until it ends (as `tether watch`).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Start an AgentRun (with --wait, print its result; with --follow, watch it live)."""
    from pydantic import ValidationError
    from tether.contracts import AgentRunInput

    raw: dict[str, Any] = read_input_file(input_file) if input_file else {}
    if task is not None:
        raw["task"] = task
    if "task" not in raw:
        fail("no task: give one (tether run \"TASK\") or put it in --input-file")
    if model is not None or endpoint or base_url:
        chosen = model_option(model or "openai:gpt-4o-mini")
        if endpoint or base_url:
            if not isinstance(chosen, str):
                fail("--endpoint and --base-url are for openai: and anthropic: models")
            provider, _, name = chosen.partition(":")
            chosen = {"provider": provider, "name": name, **given(endpoint=endpoint, base_url=base_url)}
        raw["model"] = chosen
    if approve or approval_timeout is not None:
        raw["approval"] = {**raw.get("approval", {}), **given(
            tools=approve or None, timeout_seconds=approval_timeout)}
    if system_prompt is not None:
        raw["system_prompt"] = system_prompt
    sandbox = given(image=image, cpus=cpus, memory_mb=memory_mb, tool_timeout_seconds=tool_timeout)
    if sandbox:
        raw["sandbox"] = {**raw.get("sandbox", {}), **sandbox}
    if fallback:
        raw["fallback_models"] = [model_option(f) for f in fallback]
    if tool:
        raw["tools"] = tool
    if artifact:
        raw["artifacts"] = artifact
    if file:
        raw["files"] = _upload(file)
    limits = given(max_steps=max_steps, max_tokens=max_tokens, max_cost_usd=max_cost_usd,
                   max_seconds=max_seconds)
    if limits:
        raw["budget"] = {**raw.get("budget", {}), **limits}
    try:
        run_input = AgentRunInput.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                             for e in error.errors())
        fail(f"invalid run input: {problems}", "the fields and their types: tether schema input")
    try:
        asyncio.run(_run(run_input, workflow_id, wait, follow, as_json))
    except typer.Exit:
        raise
    except Exception as error:
        _unreachable(error)
        raise


def given(**values: Any) -> dict[str, Any]:
    """The options a person gave: those not None."""
    return {name: value for name, value in values.items() if value is not None}


def read_input_file(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except OSError as error:
        fail(f"cannot read --input-file {path}: {error.strerror or error}")
    except json.JSONDecodeError as error:
        fail(f"--input-file {path} is not JSON: {error}")
    if not isinstance(raw, dict):
        fail(f"--input-file {path} holds a JSON {type(raw).__name__}, not an object",
             "a run input is an object such as {\"task\": \"...\"}; see tether schema input")
    return raw


async def _run(run_input: Any, workflow_id: str | None, wait: bool, follow: bool,
               as_json: bool) -> None:
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from tether import client

    connection = await _connect()
    task_queue = settings().task_queue
    try:
        handle = await client.start_run(connection, run_input, workflow_id=workflow_id,
                                        task_queue=task_queue)
    except WorkflowAlreadyStartedError:
        fail(f"a run with id {workflow_id} is already running",
             f"watch it with `tether watch {workflow_id}`, or give this run another --id")
    links = run_links(handle.id, handle.result_run_id or "")
    if not await client.workers_polling(connection, task_queue):
        err.print(Text("warning: ", "bold yellow") + literal(
            f"no worker polls task queue {task_queue!r}: the run waits until one starts "
            f"(`tether worker` with TETHER_TASK_QUEUE={task_queue}, or `tether dev`)"), soft_wrap=True)
    if follow:
        if not as_json:
            console.print(Text("started ") + literal(handle.id, "bold"))
        await _follow(connection, handle.id, after=-1, as_json=as_json, links=links)
        return
    if not wait:
        if as_json:
            print(json.dumps(links))
        else:
            console.print(Text("started ") + literal(handle.id, "bold"))
            console.print(Text("  web UI: ") + literal(links["ui"]), soft_wrap=True)
            console.print(Text("  watch:  ") + literal(f"tether watch {handle.id}"), soft_wrap=True)
        return
    if not as_json:
        console.print(Text("started ") + literal(handle.id, "bold")
                      + Text(" · waiting for the result…"))
    try:
        with console.status("running", spinner="dots") if not as_json else nullcontext():
            result = await handle.result()
    except Exception as error:
        _unreachable(error)  # the server went away while waiting: not the run's failure
        if as_json:
            print(json.dumps({**links, "status": "failed", "error": _cause(error)}))
            raise typer.Exit(1) from None
        fail(f"run {handle.id} failed: {_cause(error)}", f"inspect it: {links['show']}")
    if as_json:
        print(json.dumps({**links, **result.model_dump(mode="json")}))
        return
    print_result(console, result, links)


def run_links(workflow_id: str, run_id: str = "") -> dict[str, str]:
    return {"workflow_id": workflow_id, "run_id": run_id, "ui": settings().ui_link(workflow_id),
            "show": f"temporal workflow show -w {workflow_id}"}


async def _follow(connection: Any, workflow_id: str, *, after: int, as_json: bool,
                  links: dict[str, str]) -> None:
    """Shows a run's events until it ends; with --json, one event per line. Leaves with code
    0 when the run ended with a result (completed, out of budget, cancelled), else 1."""
    from tether.watch_view import WatchView
    from tether.watching import watch

    view = WatchView(console, workflow_id)
    ending = None
    with nullcontext() if as_json else view:
        async for event in watch(connection, workflow_id, after=after):
            if as_json:
                print(event.model_dump_json(), flush=True)
            else:
                view.show(event)
            if event.kind == "finished":
                ending = event
    if not as_json:
        view.finish(links)
    if ending is None or ending.result is None:
        raise typer.Exit(1)


@app.command()
def watch(
    workflow_id: str,
    after: Annotated[int, typer.Option(
        help="Resume after this event offset (numbered events before it are not shown).")] = -1,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
) -> None:
    """Watch a run live, wherever it was started: its steps, tool calls, the model's text,
    approvals waiting (with the command that answers them) and its budget, to the result."""

    async def go() -> None:
        await _follow(await _connect(), workflow_id, after=after, as_json=as_json,
                      links=run_links(workflow_id))

    _read(workflow_id, "the events", go)


def parse_since(value: str) -> Any:
    """`90s`, `15m`, `1h`, `2d` as a timedelta."""
    from datetime import timedelta

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    number, unit = value[:-1], value[-1:]
    try:
        amount = float(number)
    except ValueError:
        amount = -1
    if unit not in units or amount <= 0:
        fail(f"--since {value} is not a duration", "give a number and a unit: 90s, 15m, 1h or 2d")
    return timedelta(**{units[unit]: amount})


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(
        help="Only runs in this state: starting, thinking, running_tools, awaiting_approval, "
             "completed, budget_exhausted, cancelled or failed.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only runs started this long ago or later: 15m, 1h, 2d.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """List runs from Temporal's visibility: state, steps, cost and model."""
    from typing import get_args

    from tether import client
    from tether.contracts import RunPhase

    if status is not None and status not in get_args(RunPhase):
        fail(f"--status {status} is not a run state", f"choose one of: {', '.join(get_args(RunPhase))}")
    window = parse_since(since) if since else None

    async def go() -> Any:
        return await client.list_runs(await _connect(), status=status, since=window, limit=limit)

    runs = _run_or_fail(go, lambda error: (f"cannot list runs: {_cause(error)}", None))
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in runs]))
        return
    colours = {"completed": "green", "awaiting_approval": "yellow", "budget_exhausted": "yellow",
               "failed": "red", "cancelled": "dim", "terminated": "red", "timed_out": "red"}
    table = Table(title=f"{len(runs)} run(s)" + (f" · {status}" if status else "")
                  + (f" · since {since}" if since else ""))
    for column, justify in (("workflow id", "left"), ("state", "left"), ("steps", "right"),
                            ("cost $", "right"), ("model", "left"), ("started", "left")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]  # rich's Literal
    for r in runs:
        table.add_row(literal(r.workflow_id), literal(r.state, colours.get(r.state, "cyan")),
                      "" if r.steps is None else str(r.steps),
                      "" if r.cost_usd is None else f"{r.cost_usd:.4f}", literal(r.model or ""),
                      r.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "")
    console.print(table)


@app.command()
def schema(
    which: Annotated[str, typer.Argument(
        help="input, result, status, events, or all.")] = "all",
) -> None:
    """Print the JSON Schema of a run's input and result (and status, events), so programs in
    any language can start runs with their own Temporal SDK."""
    from pydantic import TypeAdapter
    from tether.contracts import AgentRunInput, AgentRunResult, RunStatus
    from tether.contracts.events import RunEvent

    schemas = {
        "input": AgentRunInput.model_json_schema(),
        "result": AgentRunResult.model_json_schema(),
        "status": RunStatus.model_json_schema(),
        "events": TypeAdapter(RunEvent).json_schema(),
    }
    if which == "all":
        print(json.dumps({"workflow_type": "AgentRun", "task_queue": settings().task_queue,
                          **schemas}, indent=2))
    elif which in schemas:
        print(json.dumps(schemas[which], indent=2))
    else:
        fail(f"no schema {which!r}", "choose input, result, status, events or all")


@app.command()
def status(
    workflow_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a run's live status: state, step, usage against budget, approvals."""
    from tether import client

    async def go() -> Any:
        connection = await _connect()
        current = await client.get_status(connection, workflow_id)
        return (current, await client.partial_text(connection, workflow_id),
                await client.get_waiting_calls(connection, workflow_id, settings=settings(),
                                               status=current))

    current, writing, waiting = _read(workflow_id, "the status", go)
    if as_json:
        shown = current.model_dump(mode="json")
        for entry, call in zip(shown["pending_approvals"], waiting, strict=True):
            entry.update(full_arguments=call.arguments if call.whole else None,
                         full_text=call.text if call.whole else None, problem=call.problem)
        print(json.dumps({**shown, "partial_text": writing}))
        return
    b = current.budget
    table = Table(title=literal(f"{workflow_id} · {current.state} · step {current.step}"))
    table.add_column("budget")
    table.add_column("used", justify="right")
    table.add_column("limit", justify="right")
    for name, used, limit in [("steps", b.steps, b.max_steps), ("tokens", b.tokens, b.max_tokens),
                              ("cost $", b.cost_usd, b.max_cost_usd),
                              ("seconds", b.seconds, b.max_seconds)]:
        table.add_row(name, f"{used:g}", "∞" if limit is None else f"{limit:g}")
    console.print(table)
    for call in waiting:
        _print_waiting(workflow_id, call)
    if current.last_error:
        console.print(Text("last error: ", "red") + literal(current.last_error), soft_wrap=True)
    if writing:
        console.print(literal(current.model, "cyan") + Text(" is writing: ", "cyan")
                      + literal("…" + writing[-500:]), soft_wrap=True)


def _print_waiting(workflow_id: str, call: Any) -> None:
    """A call waiting for a person, whole: the model's reason, the arguments (code as code),
    and the command approving exactly them. One that could not be read whole says why and
    is not offered for approval."""
    p = call.pending
    console.print(Text("awaiting approval ", "yellow") + literal(p.call_id) + Text(": ")
                  + literal(p.tool) + Text(" ") + literal(json.dumps(call.arguments)), soft_wrap=True)
    if call.text:
        console.print(Text("  the model: ", "yellow") + literal(call.text), soft_wrap=True)
    for name, value in call.arguments.items():
        if isinstance(value, str) and "\n" in value:
            console.print(Text(f"  {name}:", "yellow"))
            console.print(literal("    " + value.replace("\n", "\n    ")), soft_wrap=True)
    if p.arguments_digest:
        console.print(Text("  digest: ", "yellow") + literal(p.arguments_digest), soft_wrap=True)
    deny = Text("  deny: ", "yellow") + literal(
        f'tether approve {workflow_id} {p.call_id} --deny --reason "..."')
    if not call.whole:
        console.print(Text("  not shown whole: ", "red") + literal(call.problem or ""), soft_wrap=True)
        console.print(deny, soft_wrap=True)
        return
    pinned = f" --digest {p.arguments_digest}" if p.arguments_digest else ""
    console.print(Text("  approve: ", "yellow") + literal(f"tether approve {workflow_id} {p.call_id}{pinned}",
                                                        "bold"), soft_wrap=True)
    console.print(deny, soft_wrap=True)


@app.command()
def transcript(
    workflow_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a run's steps: what the model said, each tool call and its result."""
    from tether import client
    from tether.watch_view import person_said

    async def go() -> Any:
        return await client.get_transcript(await _connect(), workflow_id)

    steps = _read(workflow_id, "the transcript", go)
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in steps]))
        return
    for step in steps:
        console.rule(literal(f"step {step.step} · {step.model}"
                             + (f" · {step.note}" if step.note else "")))
        for said in step.messages:
            console.print(person_said(said), soft_wrap=True)
        if step.text:
            console.print(literal(step.text), soft_wrap=True)
        for call, result in zip(step.tool_calls, step.tool_results, strict=False):
            colour = "green" if result.exit_code == 0 else "red"
            console.print(literal(call.name, "bold") + Text(" ")
                          + clipped(json.dumps(call.arguments), 300), soft_wrap=True)
            status_line = Text(f"  exit {result.exit_code}", colour)
            if result.timed_out:
                status_line.append(" timed out", "yellow")
            if result.truncated:
                status_line.append(" truncated", "yellow")
            console.print(status_line)
            for stream in (result.stdout, result.stderr):
                if stream:
                    console.print(Text("  ") + clipped(stream.strip().replace("\n", "\n  "), 2000),
                                  soft_wrap=True)


@app.command()
def artifacts(
    workflow_id: str,
    download: Annotated[Path | None, typer.Option(
        help="Write the artifacts under this directory (and nowhere else).")] = None,
    glob: Annotated[list[str] | None, typer.Option(
        help="Download only what this glob matches (repeat). A dotfile (.git/config, .env) is "
             "written only when a glob names it, dot included: '.git/*', not '**'.")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Replace files already in the directory; without it, one there refuses the download.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the files a run left (its input's `artifacts` globs), or download them."""
    from tether import client

    async def go() -> Any:
        return await client.get_artifacts(await _connect(), workflow_id)

    found = _read(workflow_id, "the artifacts", go)
    downloaded = None
    if download is not None:
        from tether.store import StoreError
        from tether.store.files import ArtifactExists, write_artifacts
        from tether.store.globs import named

        if found.artifacts and settings().store_url is None and not settings().store_path.is_dir():
            fail(f"the store {settings().store_path} does not exist, so it holds none of the run's "
                 "artifacts", WORKERS_STORE_HINT)
        try:
            store = client.content_store(settings())
            absent = [r.path for r in found.artifacts
                      if (glob is None or named(glob, r.path, dotted=True)) and not store.has(r.sha256)]
            if absent:
                fail(f"{', '.join(absent)}: not in the store {settings().store_location}, which this "
                     "command reads, so nothing was written: the workers wrote to another",
                     WORKERS_STORE_HINT)
            downloaded = write_artifacts(store, found.artifacts, download, globs=glob,
                                         overwrite=overwrite)
        except ArtifactExists as exists:
            fail(f"{exists.where / exists.path} already exists, so nothing was written: "
                 "pass --overwrite to replace it")
        except StoreError as error:
            fail(f"cannot download the artifacts: {error}",
                 "check TETHER_STORE_URL: the CLI reads the store the workers write")
        except OSError as error:
            fail(f"cannot write to {download}: {error.strerror or error}", "choose a directory you can write")
    if as_json:
        body = found.model_dump(mode="json")
        if downloaded is not None:
            body["written"] = [str(path) for path in downloaded.written]
            body["not_written"] = [s.model_dump(mode="json") for s in downloaded.skipped]
        print(json.dumps(body))
        return
    table = Table(title=literal(f"{workflow_id} · {len(found.artifacts)} artifact(s)"))
    for column, justify in (("path", "left"), ("size", "right"), ("sha256", "left"), ("", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]  # rich's Literal
    for record in found.artifacts:
        table.add_row(literal(record.path), f"{record.size:,}", record.sha256[:12], "")
    for skipped in found.skipped:
        table.add_row(literal(skipped.path), "", "", literal(f"skipped: {skipped.reason}", "yellow"))
    console.print(table)
    if downloaded is not None:
        console.print(Text(f"wrote {len(downloaded.written)} file(s) under ") + literal(str(download)))
        for skipped in downloaded.skipped:
            console.print(Text("not written ", "red") + literal(skipped.path) + Text(": ")
                          + literal(skipped.reason), soft_wrap=True)
    elif not found.artifacts and not found.skipped:
        console.print(Text("none: the run is still going, never had a sandbox, or asked for no "
                           "artifacts (tether run --artifact GLOB)", "dim"))


WORKERS_STORE_HINT = ("run it with the workers' TETHER_DATA_DIR (or TETHER_STORE_URL, "
                      "TETHER_STORE_DIR): the CLI reads the store the workers write")


def _upload(paths: list[Path]) -> dict[str, str]:
    """Puts the files in the content store the workers read; what can't go is a clear error."""
    from tether.client import content_store
    from tether.store import StoreError
    from tether.store.files import FilesRefused, upload_paths

    try:
        return upload_paths(content_store(settings()), paths)
    except FilesRefused as error:
        fail(f"--file refused: {error}", "give existing regular files or directories, each under 16 MiB")
    except StoreError as error:
        fail(f"--file: cannot store the files: {error}",
             "check TETHER_STORE_URL: the CLI writes the store the workers read")
    except OSError as error:
        fail(f"--file: cannot store the files: {error}", "check TETHER_STORE_DIR (the workers' store)")


def _read(workflow_id: str, what: str, go: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Runs a read of a run; a run that can't be read (no such id, a query the run refused)
    is a clear error, not a traceback."""
    return _run_or_fail(go, lambda error: (f"cannot read {what} of run {workflow_id}: {_cause(error)}",
                                           "check the workflow id: tether list"))


def _run_or_fail(go: Callable[[], Coroutine[Any, Any, Any]],
                 explain: Callable[[Exception], tuple[str, str | None]]) -> Any:
    """Runs a command's call to Temporal. Any failure is one line, never a traceback: an
    unreachable server or a run no worker serves says so, anything else as `explain` puts it
    (what went wrong, and what to do)."""
    try:
        return asyncio.run(go())
    except typer.Exit:
        raise
    except Exception as error:
        _unreachable(error)
        _no_worker(error)
        fail(*explain(error))


def _no_worker(error: BaseException) -> None:
    """Fails with one line when no worker could answer about a run."""
    from tether.client import NoWorker

    if isinstance(error, NoWorker):
        fail(str(error), "start one: `tether worker` (with the run's TETHER_TASK_QUEUE) or `tether dev`")


def _update(workflow_id: str, name: str, *args: Any) -> None:
    """Sends an update to a run and prints what it changed, or why it was refused."""
    changed = _send_update(workflow_id, name, *args)
    console.print(literal(changed if isinstance(changed, str) else json.dumps(changed)),
                  soft_wrap=True)


def _send_update(workflow_id: str, name: str, *args: Any,
                 reword: Callable[[str], str] = str) -> Any:
    """Sends an update to a run and returns its answer; a refusal is a clear error, its
    reason passed through `reword` (to name what the person typed)."""
    from tether import client

    async def go() -> Any:
        handle = client.get_run(await _connect(), workflow_id)
        return await handle.execute_update(name, args=list(args))

    return _run_or_fail(go, lambda error: (f"{name} refused: {reword(_cause(error))}",
                                           f"check the run: tether status {workflow_id}"))


@app.command()
def approve(
    workflow_id: str,
    call_id: Annotated[str, typer.Argument(help="The call's id, as `tether status` shows it.")],
    deny: Annotated[bool, typer.Option("--deny", help="Deny the call instead.")] = False,
    reason: Annotated[str | None, typer.Option()] = None,
    digest: Annotated[str | None, typer.Option(
        help="The arguments' digest as `tether status` prints it: the run refuses the "
             "approval unless those are exactly the arguments that would run.")] = None,
) -> None:
    """Approve (or --deny) a tool call that is waiting for a person."""
    _update(workflow_id, "approve", call_id, not deny, reason, *([digest] if digest else []))


@app.command()
def cancel(
    workflow_id: str,
    reason: Annotated[str, typer.Option()] = "cancelled from the tether CLI",
) -> None:
    """Stop a run: the step in flight is interrupted and its sandbox removed."""
    _update(workflow_id, "cancel", reason)


@app.command()
def message(workflow_id: str, text: str) -> None:
    """Add a person's message to the conversation; the model sees it at its next step."""
    _update(workflow_id, "send_message", text)


@app.command()
def extend(
    workflow_id: str,
    steps: Annotated[int | None, typer.Option()] = None,
    tokens: Annotated[int | None, typer.Option()] = None,
    cost_usd: Annotated[float | None, typer.Option()] = None,
    seconds: Annotated[float | None, typer.Option()] = None,
) -> None:
    """Raise a run's budget by the given amounts (a limit that is unlimited stays so)."""
    more = given(max_steps=steps, max_tokens=tokens, max_cost_usd=cost_usd, max_seconds=seconds)
    if not more:
        fail("name a limit to raise", "for example: tether extend RUN --steps 10 "
                                      "(also --tokens, --cost-usd, --seconds)")

    def reword(reason: str) -> str:
        for field, flag in EXTEND_FLAGS.items():
            reason = reason.replace(field, flag)
        return reason

    limits = _send_update(workflow_id, "extend_budget", more, reword=reword)
    for field, amount in more.items():
        now = limits.get(field)
        line = Text(f"{EXTEND_FLAGS[field]} {amount:g}: ", "bold")
        if now is None:
            line.append("this limit is unlimited already; nothing changed", "yellow")
        else:
            line.append(f"raised to {now:g}", "green")
        console.print(line)


EXTEND_FLAGS = {"max_steps": "--steps", "max_tokens": "--tokens", "max_cost_usd": "--cost-usd",
                "max_seconds": "--seconds"}


@app.command()
def worker(
    tools: Annotated[list[str] | None, typer.Option(
        "--tools", metavar="ENTRY",
        help="Function tools to serve: `module` or `module:function` (repeat), with TETHER_TOOLS.")] = None,
    metrics_bind: Annotated[str | None, typer.Option(
        "--metrics-bind", metavar="HOST:PORT",
        help="Serve Prometheus metrics on HOST:PORT, path /metrics (TETHER_METRICS_BIND).")] = None,
) -> None:
    """Run one worker in the foreground (the same as `python worker.py`)."""
    from tether import worker as worker_module

    chosen = settings()
    if tools:
        chosen = chosen.model_copy(update={"tools": [*chosen.tools, *tools]})
    if metrics_bind:
        try:
            chosen = chosen.model_copy(update={"metrics_bind": host_and_port(metrics_bind)})
        except ValueError as error:
            fail(f"--metrics-bind: {error}")
    asyncio.run(worker_module.main(chosen))


CODEC_ENDPOINT_HELP = ("The codec server the Web UI decodes encrypted payloads with, when "
                       "TETHER_ENCRYPTION_KEYS is set (`tether codec-server`).")


@app.command()
def server(
    port: Annotated[int, typer.Option()] = 7233,
    ui_port: Annotated[int | None, typer.Option(help="Default: TETHER_UI_PORT, 8233.")] = None,
    codec_endpoint: Annotated[str, typer.Option(help=CODEC_ENDPOINT_HELP)] = "http://localhost:8081",
) -> None:
    """Run the embedded Temporal dev server in the foreground (SQLite in TETHER_DATA_DIR)."""
    ui_port = ui_port or settings().ui_port
    data = _data_dir()
    token = settings().codec_token
    endpoint = (_ui_codec_endpoint(codec_endpoint, token.get_secret_value() if token else None)
                if settings().encryption_keys else None)
    command = embedded.server_command(port=port, ui_port=ui_port, db_file=data / "temporal.db",
                                      log_level="warn", codec_endpoint=endpoint)
    console.print(f"Temporal dev server on 127.0.0.1:{port} · web UI http://localhost:{ui_port}")
    if endpoint:
        console.print(f"the web UI decodes payloads with the codec server at {codec_endpoint}"
                      f"{' (with TETHER_CODEC_TOKEN)' if token else ''}: run `tether codec-server` "
                      "beside it")
    os.execv(command[0], command)


def _data_dir() -> Path:
    """The data directory, made; a `.tether` here from an earlier tether, which kept its
    data in the working directory, is named so that its runs are not silently out of sight."""
    data = settings().data_path
    data.mkdir(parents=True, exist_ok=True)
    old = Path(".tether").resolve()
    if (old / "temporal.db").exists() and old != data:
        err.print(literal(f"note: {old} is no longer read: data lives in {data} now; to keep "
                          f"using the old one, set TETHER_DATA_DIR={old}", "yellow"), soft_wrap=True)
    return data


def _ui_codec_endpoint(endpoint: str, token: str | None) -> str:
    """The endpoint the Web UI calls: it sends no header of its own, so the codec server's
    token is the path's first segment (`tether codec-server` takes it there too)."""
    return f"{endpoint.rstrip('/')}/{token}" if token else endpoint


@app.command()
def dev(
    codec_endpoint: Annotated[str, typer.Option(help=CODEC_ENDPOINT_HELP)] = "http://localhost:8081",
) -> None:
    """Run the dev server and a worker together (and with TETHER_ENCRYPTION_KEYS, the codec
    server for the Web UI); Ctrl-C stops them all."""
    # Ctrl-C is this command's way out, even when started from a shell that ignores it
    # (a background job), whose children would inherit the ignoring.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    data = _data_dir()
    address = settings().temporal_address
    keyed = settings().encryption_keys is not None
    # The codec server asks for a token even here: one of this session's own when none is set.
    given = settings().codec_token
    token = given.get_secret_value() if given else secrets.token_urlsafe(24)
    server_process = None
    if not embedded.answers(address):
        port = int(address.rpartition(":")[2])
        server_process = embedded.start(
            port=port, ui_port=settings().ui_port, db_file=data / "temporal.db",
            log_file=data / "temporal.log",
            codec_endpoint=_ui_codec_endpoint(codec_endpoint, token) if keyed else None)
        console.print(f"Temporal dev server on {address} · web UI http://localhost:{settings().ui_port}")
    codec_process = None
    if keyed:
        codec_process = subprocess.Popen([
            sys.executable, "-m", "tether.cli", "codec-server",
            "--port", str(urlsplit(codec_endpoint).port or 80)],
            env={**os.environ, "TETHER_CODEC_TOKEN": token})
        console.print(f"codec server on {codec_endpoint}, for the web UI only "
                      "(its endpoint carries the token)")
    worker_process = subprocess.Popen([sys.executable, "-m", "tether.worker"])
    try:
        worker_process.wait()
    except KeyboardInterrupt:
        stop_process(worker_process)
    finally:
        if codec_process is not None:
            codec_process.terminate()
            codec_process.wait()
        if server_process is not None:
            server_process.terminate()
            server_process.wait()
    console.print("stopped")
    if worker_process.returncode and worker_process.returncode > 0:
        raise typer.Exit(1)  # the worker could not start, and said why


def stop_process(process: subprocess.Popen[bytes], grace_seconds: float = 20) -> None:
    """Asks a worker to stop as Ctrl-C would; a worker still starting up may have lost that
    signal inside an import, so it is then asked again with SIGTERM, and killed last."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        process.send_signal(sig)
        try:
            process.wait(timeout=grace_seconds)
            return
        except subprocess.TimeoutExpired:
            continue


@app.command()
def demo(
    script: Annotated[Path, typer.Option()] = Path(__file__).parent / "examples" / "demo.json",
) -> None:
    """Run the demo agent end to end on the embedded default."""
    from tether.demo import run_demo

    _data_dir()
    try:
        code = asyncio.run(run_demo(script, console, settings()))
    except Exception as error:
        _unreachable(error)
        raise
    raise typer.Exit(code)


image_app = typer.Typer(help="Sandbox images with your own packages.", no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    tag: Annotated[str, typer.Argument(help="The new image's tag, such as my-sandbox:1.")],
    pip: Annotated[list[str] | None, typer.Option(
        "--pip", metavar="PKG", help="A pip package to add, such as pandas==2.2.3 (repeat).")] = None,
    apt: Annotated[list[str] | None, typer.Option(
        "--apt", metavar="PKG", help="A Debian package to add, such as git (repeat).")] = None,
    base: Annotated[str, typer.Option(
        "--from", metavar="IMAGE", help="The tether sandbox image to build on.")] = "tether-sandbox:latest",
    network: Annotated[str | None, typer.Option(
        help="The build's network for apt; default: the engine's, or the host's when the "
             "engine has no bridge network.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for programs.")] = False,
) -> None:
    """Build a sandbox image with more packages, for a run's "sandbox": {"image": TAG}.

    The image is tether's sandbox image (or --from another one tether made)
    plus the packages: same executor, same non-root user, no setuid files.
    The network is used while building only; its sandboxes have none.
    """
    from tether.sandbox.engine import EngineUnavailable, connect_engine
    from tether.sandbox.image_build import ImageBuildError, build_image

    def failed(message: str, hint: str | None, **more: Any) -> NoReturn:
        if as_json:
            print(json.dumps({"tag": tag, "status": "failed", "error": message, "hint": hint, **more}))
            raise typer.Exit(2)
        fail(message, hint)

    try:
        engine = connect_engine()
    except EngineUnavailable as error:
        failed(str(error), None)
    build = functools.partial(build_image, engine, tag, pip=pip or [], apt=apt or [], base=base,
                              network=network)
    try:
        if as_json:
            built = build()
        else:
            with _BuildProgress(console) as shown:
                built = build(progress=shown.event)
    except ImageBuildError as error:
        if not as_json:
            for line in error.log[-12:]:
                err.print(literal("  " + line, "dim"), soft_wrap=True)
        failed(error.message, error.hint, package=error.package, log=error.log)
    if as_json:
        print(json.dumps({**built.as_dict(), "status": "built"}))
        return
    console.print(Text("built ", "green") + literal(built.tag, "bold")
                  + Text(f" in {built.seconds:.1f} s · use it in a run: ")
                  + literal(json.dumps({"sandbox": {"image": built.tag}})), soft_wrap=True)


class _BuildProgress(Progress):
    """A spinner with what the build does now and for how long, the last line pip, apt or the
    engine wrote under it, and a line for each step done. Their text is printed literally."""

    def __init__(self, console: Console) -> None:
        self.line = ""
        super().__init__(SpinnerColumn(), TextColumn("{task.description}", markup=False),
                         TimeElapsedColumn(), console=console, transient=True)
        self.task_id = self.add_task("starting")

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.line:
            yield literal(self.line.strip()[:200], "dim")

    def event(self, kind: str, text: str) -> None:
        if kind == "phase":
            self.line = ""
            self.reset(self.task_id, description=literal(text).plain)
        elif kind == "done":
            self.console.print(Text("✓ ", "green") + literal(text), soft_wrap=True)
        elif text.strip():
            self.line = text
        self.refresh()


@app.command("codec-server")
def codec_server(
    port: Annotated[int, typer.Option()] = 8081,
    host: Annotated[str, typer.Option(
        help="Where to listen. Beyond loopback it needs a token (TETHER_CODEC_TOKEN).")] = "127.0.0.1",
    cors_origin: Annotated[list[str] | None, typer.Option(
        help="A Web UI origin allowed to call it (repeat); default: the embedded UI's, "
             "http://localhost:TETHER_UI_PORT and http://127.0.0.1:TETHER_UI_PORT.")] = None,
    allow_host: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help="A name requests may reach it by, beyond localhost, 127.0.0.1 "
                             "and the --host address (repeat).")] = None,
    token_env: Annotated[str | None, typer.Option(
        metavar="NAME", help="The variable holding the token requests must carry; "
                             "default: TETHER_CODEC_TOKEN.")] = None,
) -> None:
    """Serve Temporal's codec protocol (POST /encode, /decode) with TETHER_ENCRYPTION_KEYS, so the
    Web UI and `temporal workflow show --codec-endpoint` show encrypted runs in plaintext."""
    from tether.encryption import codec_server as codec
    from tether.encryption.codec_access import Access, AccessRefused, check_token

    keys = settings().key_ring
    if keys is None:
        fail("the codec server needs TETHER_ENCRYPTION_KEYS, the keys the workers encrypt with",
             "set it as on the workers; `tether keygen ID` makes a key")
    ui = settings().ui_port
    origins = cors_origin or [f"http://localhost:{ui}", f"http://127.0.0.1:{ui}"]
    try:
        if token_env:
            if not os.environ.get(token_env):
                raise AccessRefused(f"--token-env {token_env}: {token_env} is not set")
            token: str | None = check_token(os.environ[token_env], named=token_env)
        elif settings().codec_token:
            token = check_token(settings().codec_token.get_secret_value(),  # type: ignore[union-attr]
                                named="TETHER_CODEC_TOKEN")
        else:
            token = None
        access = Access.of(token=token, listen=host, allow_hosts=allow_host or [],
                           cors_origins=origins)
    except AccessRefused as error:
        fail(str(error))
    guarded = ("requests need the token" if token else
               f"no token: anyone on this machine who reaches {host}:{port} can decrypt "
               "(set TETHER_CODEC_TOKEN to ask for one)")
    console.print(Text(f"codec server on http://{host}:{port} · keys {', '.join(keys.ids)} · "
                       f"for the web UI at {', '.join(origins)} · answers to "
                       f"{', '.join(sorted(access.hosts))} · {guarded}"), soft_wrap=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(codec.serve(keys, host=host, port=port, access=access))


@app.command()
def keygen(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The new key's id, such as 2025-06.")],
) -> None:
    """Print a new AES-256 key as `ID:BASE64`, for TETHER_ENCRYPTION_KEYS (put it first to
    encrypt with it; keep the old keys after it while anything they encrypted is read)."""
    from tether.encryption import InvalidKeys, KeyRing

    try:
        print(KeyRing.generate(key_id))
    except InvalidKeys as error:
        fail(str(error))


store_app = typer.Typer(help="The conversation store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("rekey")
def store_rekey(
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Re-encrypt every blob of the conversation store that is not under the current key (the
    first of TETHER_ENCRYPTION_KEYS), so an old key can be removed. Safe while workers run;
    stopped anywhere, it leaves every blob readable, and running it again finishes the job."""
    from tether.store.backends import open_blobs
    from tether.store.errors import StoreError
    from tether.store.rekey import rekey

    keys = settings().key_ring
    if keys is None:
        fail("store rekey needs TETHER_ENCRYPTION_KEYS: the new key first, the old ones after it",
             "set it as on the workers, once every worker has the new key in front")
    again = "blobs done stay done: run `tether store rekey` again to finish"
    blobs = open_blobs(settings().store_location)
    try:
        counts = rekey(blobs, keys) if as_json else _rekey_shown(blobs, keys)
    except StoreError as error:
        fail(str(error), again)
    except KeyboardInterrupt:
        fail("stopped", again)
    if as_json:
        print(json.dumps({"store": blobs.where, "key": keys.primary, "blobs": counts.blobs,
                          "rekeyed": counts.rekeyed, "current": counts.current,
                          "unreadable": [{"digest": d, "error": e} for d, e in counts.unreadable]}))
    else:
        console.print(Text("✓ ", "green") + literal(
            f"{counts.rekeyed} blobs of {blobs.where} rewritten under key '{keys.primary}' · "
            f"{counts.current} were under it already"), soft_wrap=True)
        for digest, problem in counts.unreadable:
            err.print(Text("✗ ", "red") + literal(f"blob {digest[:12]}: {problem}"), soft_wrap=True)
    if counts.unreadable:
        if not as_json:
            err.print(literal(f"{len(counts.unreadable)} blobs could not be opened and were left as "
                              "they are: keep the keys they need, or restore them"), soft_wrap=True)
        raise typer.Exit(1)


def _rekey_shown(blobs: ObjectBlobs, keys: KeyRing) -> RekeyCounts:
    """rekey, with a bar: the blobs are listed first, so the bar knows how many there are."""
    from tether.store.rekey import rekey

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as shown:
        listing = shown.add_task(f"listing {blobs.where}", total=None)
        digests = []
        for digest in blobs.digests():
            digests.append(digest)
            shown.update(listing, description=f"listing {blobs.where}: {len(digests)}")
        shown.remove_task(listing)
        task = shown.add_task(f"rekeying to '{keys.primary}'", total=len(digests))
        return rekey(blobs, keys, digests=digests,
                     progress=lambda counts: shown.update(task, completed=counts.blobs))


@app.command("stop-server")
def stop_server() -> None:
    """Stop the background dev server that `make demo` left running."""
    stopped = embedded.stop_detached(settings())
    console.print("stopped the dev server" if stopped else "no background dev server")


UNREACHABLE_HINT = ("check that it runs: start one with `tether server` (or `tether dev`), "
                    "or set TEMPORAL_ADDRESS to the address of one")


async def _connect() -> Any:
    from tether import client

    try:
        return await client.connect(settings())
    except ConnectionError as error:  # no Temporal server answers there
        _unreachable(error)
        raise
    except Exception as error:
        fail(f"cannot connect to the Temporal server at {settings().temporal_address}: "
             f"{_cause(error).splitlines()[0][:300]} — {UNREACHABLE_HINT}")


def _unreachable(error: BaseException) -> None:
    """Fails with one line, exit code 2, when `error` (or what caused it) is the Temporal
    server being unreachable: at connection, or lost in the middle of a command."""
    from temporalio.service import RPCError, RPCStatusCode

    _needs_keys(error)
    address = settings().temporal_address
    seen: BaseException | None = error
    for _ in range(20):  # a chain of causes; never a cycle's endless walk
        if seen is None:
            return
        if isinstance(seen, ConnectionError) and "Temporal server at" in str(seen):
            fail(f"{seen} — {UNREACHABLE_HINT}")  # from tether.client.connect
        if isinstance(seen, RPCError) and seen.status == RPCStatusCode.UNAVAILABLE:
            fail(f"the Temporal server at {address} is unreachable: "
                 f"{seen.message.splitlines()[0][:200] if seen.message else 'unavailable'}"
                 f" — {UNREACHABLE_HINT}")
        if isinstance(seen, embedded.ServerUnavailable):  # `tether demo` finding its server
            fail(f"the Temporal server at {address} is unreachable — {UNREACHABLE_HINT}"
                 if "does not answer" in str(seen) else str(seen))
        seen = seen.__cause__ or seen.__context__


def _needs_keys(error: BaseException) -> None:
    """Fails with one line when `error` is a run's data being encrypted with a key this
    process doesn't hold, or with no keys here at all."""
    from tether.encryption import DecryptionError
    from tether.encryption.codec import ENCODING

    hint = "set TETHER_ENCRYPTION_KEYS to the keys the workers use"
    cause = error
    while cause.__cause__ is not None and not isinstance(cause, DecryptionError):
        cause = cause.__cause__
    if isinstance(cause, DecryptionError):
        fail(str(cause), hint)
    if settings().encryption_keys is None and f"encoding {ENCODING.decode()}" in str(cause):
        fail("the run's data is encrypted, and this command has no keys to read it", hint)


def _cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error)


if __name__ == "__main__":
    main()
