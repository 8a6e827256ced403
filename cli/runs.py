"""Commands that start and read runs: run, watch, list, schema, status, transcript and
artifacts. Each is a layer over one or two calls of `tether.client`: it turns options into
the call's arguments and the answer into lines, tables or `--json`."""

from __future__ import annotations

import asyncio
import json
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from pydantic import TypeAdapter, ValidationError
from rich.text import Text
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from tether import client
from tether.approvals import WaitingCall
from tether.cli.app import app
from tether.cli.calls import call, connect, read
from tether.cli.context import given, run_links, settings
from tether.cli.errors import cause, fail, unreachable
from tether.cli.render import (
    console,
    err,
    literal,
    print_artifacts,
    print_in_flight,
    print_result,
    print_runs,
    print_status,
    print_transcript,
)
from tether.cli.run_tree import print_tree
from tether.cli.watch_view import WatchView
from tether.contracts import AgentRunInput, AgentRunResult, RunArtifacts, RunPhase, RunStatus, StepRecord
from tether.contracts.events import RunEvent
from tether.contracts.listing import RunListing
from tether.contracts.names import AGENT_RUN
from tether.store import StoreError
from tether.store.files import ArtifactExists, Downloaded, FilesRefused, write_artifacts
from tether.store.globs import named


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
    account: Annotated[str | None, typer.Option(
        metavar="NAME", help="A budget account to charge as well (tether account set).")] = None,
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
                   max_seconds=max_seconds, account=account)
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
        unreachable(error)
        raise


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


async def _run(run_input: AgentRunInput, workflow_id: str | None, wait: bool, follow: bool,
               as_json: bool) -> None:
    connection = await connect()
    task_queue = settings().task_queue
    try:
        handle = await client.start_run(connection, run_input, workflow_id=workflow_id,
                                        task_queue=task_queue)
    except WorkflowAlreadyStartedError:
        fail(f"a run with id {workflow_id} is already running",
             f"watch it with `tether watch {workflow_id}`, or give this run another --id")
    except client.AccountNotFound as missing:
        fail(str(missing))
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
        unreachable(error)  # the server went away while waiting: not the run's failure
        if as_json:
            print(json.dumps({**links, "status": "failed", "error": cause(error)}))
            raise typer.Exit(1) from None
        fail(f"run {handle.id} failed: {cause(error)}", f"inspect it: {links['show']}")
    if as_json:
        print(json.dumps({**links, **result.model_dump(mode="json")}))
        return
    print_result(console, result, links)


async def _follow(connection: Client, workflow_id: str, *, after: int, as_json: bool,
                  links: dict[str, str]) -> None:
    """Shows a run's events until it ends; with --json, one event per line. Leaves with code
    0 when the run ended with a result (completed, out of budget, cancelled), else 1."""
    view = WatchView(console, workflow_id)
    ending = None
    with nullcontext() if as_json else view:
        async for event in client.watch(connection, workflow_id, after=after):
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
        await _follow(await connect(), workflow_id, after=after, as_json=as_json,
                      links=run_links(workflow_id))

    read(workflow_id, "the events", go)


def parse_since(value: str) -> timedelta:
    """`90s`, `15m`, `1h`, `2d` as a timedelta."""
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
    forks: Annotated[bool, typer.Option("--forks", help="Only forks (tether fork).")] = False,
    fork_of: Annotated[str | None, typer.Option(
        "--fork-of", metavar="RUN", help="Only the forks of this run.")] = None,
    tree: Annotated[bool, typer.Option(
        "--tree", help="Each run's sub-agents under it, indented.")] = False,
) -> None:
    """List runs from Temporal's visibility: state, steps, cost and model."""
    if status is not None and status not in get_args(RunPhase):
        fail(f"--status {status} is not a run state", f"choose one of: {', '.join(get_args(RunPhase))}")
    window = parse_since(since) if since else None

    async def go() -> list[RunListing]:
        return await client.list_runs(await connect(), status=status, since=window, limit=limit,
                                      forks=forks, fork_of=fork_of)

    runs = call(go, lambda error: (f"cannot list runs: {cause(error)}", None))
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in runs]))
        return
    if tree:
        print_tree(console, runs, literal)
        return
    print_runs(runs, status=status, since=since)


@app.command()
def schema(
    which: Annotated[str, typer.Argument(
        help="input, result, status, events, or all.")] = "all",
) -> None:
    """Print the JSON Schema of a run's input and result (and status, events), so programs in
    any language can start runs with their own Temporal SDK."""
    schemas = {
        "input": AgentRunInput.model_json_schema(),
        "result": AgentRunResult.model_json_schema(),
        "status": RunStatus.model_json_schema(),
        "events": TypeAdapter(RunEvent).json_schema(),
    }
    if which == "all":
        print(json.dumps({"workflow_type": AGENT_RUN, "task_queue": settings().task_queue,
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

    async def go() -> tuple[RunStatus, str | None, list[WaitingCall]]:
        connection = await connect()
        current = await client.get_status(connection, workflow_id)
        return (current, await client.partial_text(connection, workflow_id),
                await client.get_waiting_calls(connection, workflow_id, settings=settings(),
                                               status=current))

    current, writing, waiting = read(workflow_id, "the status", go)
    if as_json:
        shown = current.model_dump(mode="json")
        for entry, waiting_call in zip(shown["pending_approvals"], waiting, strict=True):
            whole = waiting_call.whole
            entry.update(full_arguments=waiting_call.arguments if whole else None,
                         full_text=waiting_call.text if whole else None, problem=waiting_call.problem)
        print(json.dumps({**shown, "partial_text": writing}))
        return
    print_status(workflow_id, current, writing, waiting)


@app.command()
def transcript(
    workflow_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a run's steps: what the model said, each tool call and its result."""

    async def go() -> tuple[list[StepRecord], tuple[StepRecord, RunStatus] | None]:
        connection = await connect()
        steps = await client.get_transcript(connection, workflow_id)
        return steps, None if as_json else await client.get_in_flight(connection, workflow_id)

    steps, in_flight = read(workflow_id, "the transcript", go)
    if as_json:
        print(json.dumps([s.model_dump(mode="json") for s in steps]))
        return
    print_transcript(steps)
    if in_flight is not None:
        print_in_flight(workflow_id, *in_flight)


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

    async def go() -> RunArtifacts:
        return await client.get_artifacts(await connect(), workflow_id)

    found = read(workflow_id, "the artifacts", go)
    downloaded: Downloaded | None = None
    if download is not None:
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
    print_artifacts(workflow_id, found, downloaded, download)


WORKERS_STORE_HINT = ("run it with the workers' TETHER_DATA_DIR (or TETHER_STORE_URL, "
                      "TETHER_STORE_DIR): the CLI reads the store the workers write")


def _upload(paths: list[Path]) -> dict[str, str]:
    """Puts the files in the content store the workers read; what can't go is a clear error."""
    try:
        return client.upload_files(paths, settings=settings())
    except FilesRefused as error:
        fail(f"--file refused: {error}", "give existing regular files or directories, each under 16 MiB")
    except StoreError as error:
        fail(f"--file: cannot store the files: {error}",
             "check TETHER_STORE_URL: the CLI writes the store the workers read")
    except OSError as error:
        fail(f"--file: cannot store the files: {error}", "check TETHER_STORE_DIR (the workers' store)")


