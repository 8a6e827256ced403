"""Commands that run tether itself: a worker, the dev server (alone or with a worker, as
`tether dev`), the demo, the codec server for the Web UI, and stopping a background server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.text import Text
from tether.cli.app import app
from tether.cli.context import settings
from tether.cli.dev_session import as_ctrl_c, joined_server, stop_worker
from tether.cli.errors import fail, unreachable
from tether.cli.render import console, err, literal
from tether.embedded import temporal as embedded
from tether.embedded.processes import start_process
from tether.encryption.codec_access import Access, AccessRefused, check_token
from tether.encryption.port_owner import port_taken
from tether.settings import host_and_port


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
    # Imported here, not at the top: the worker brings Docker, the model SDKs and every
    # activity, which no other command needs, and each would start that much slower.
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


def _ui_codec_endpoint(endpoint: str, token: str | None) -> str:
    """The endpoint the Web UI calls: it sends no header of its own, so the codec server's
    token is the path's first segment (`tether codec-server` takes it there too)."""
    return f"{endpoint.rstrip('/')}/{token}" if token else endpoint


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


@app.command()
def dev(
    codec_endpoint: Annotated[str, typer.Option(help=CODEC_ENDPOINT_HELP)] = "http://localhost:8081",
) -> None:
    """Run the dev server and a worker together (and with TETHER_ENCRYPTION_KEYS, the codec
    server for the Web UI); Ctrl-C stops them all."""
    # Ctrl-C is this command's way out, even when started from a shell that ignores it
    # (a background job), whose children would inherit the ignoring.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # `kill` and a closed terminal stop it as Ctrl-C does: what it starts runs in process
    # groups of its own, which neither signal reaches.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, as_ctrl_c)
    data = _data_dir()
    address = settings().temporal_address
    keyed = settings().encryption_keys is not None
    # The codec server asks for a token even here: one of this session's own when none is set.
    given = settings().codec_token
    token = given.get_secret_value() if given else secrets.token_urlsafe(24)
    ui_endpoint = _ui_codec_endpoint(codec_endpoint, token) if keyed else None
    server_process = codec_process = worker_process = None
    # Each process in a group of its own: Ctrl-C at a terminal signals the whole foreground
    # group, and the worker must drain against a server still up; this command stops each
    # in turn, the worker first, whenever Ctrl-C comes.
    try:
        if not embedded.answers(address):
            port = int(address.rpartition(":")[2])
            server_process = embedded.start(
                port=port, ui_port=settings().ui_port, db_file=data / "temporal.db",
                log_file=data / "temporal.log", codec_endpoint=ui_endpoint, own_group=True)
            console.print(f"Temporal dev server on {address} · web UI http://localhost:{settings().ui_port}")
        else:
            joined_server(address, ui_port=settings().ui_port, codec_endpoint=ui_endpoint)
        if keyed:
            codec_process = start_process([
                sys.executable, "-m", "tether.cli", "codec-server",
                "--port", str(urlsplit(codec_endpoint).port or 80)],
                env={**os.environ, "TETHER_CODEC_TOKEN": token}, process_group=0)
            console.print(f"codec server on {codec_endpoint}, for the web UI only "
                          "(its endpoint carries the token)")
        worker_process = start_process([sys.executable, "-m", "tether.worker"], process_group=0)
        worker_process.wait()
    except KeyboardInterrupt:
        if worker_process is not None:
            stop_worker(worker_process, settings().drain_seconds)
    finally:
        if worker_process is not None and worker_process.poll() is None:
            worker_process.kill()  # a Ctrl-C that came before stop_worker took over
            worker_process.wait()
        if codec_process is not None:
            codec_process.terminate()
            codec_process.wait()
        if server_process is not None:
            server_process.terminate()
            server_process.wait()
    with contextlib.suppress(OSError):  # a terminal closed under it
        console.print("stopped")
    if worker_process is not None and worker_process.returncode and worker_process.returncode > 0:
        raise typer.Exit(1)  # the worker could not start, and said why


@app.command()
def demo(
    script: Annotated[Path, typer.Option()] = Path(__file__).parent.parent / "examples" / "demo.json",
) -> None:
    """Run the demo agent end to end on the embedded default."""
    # Imported here, not at the top, for every other command's start-up time: the demo
    # runs a worker in this process (see `worker`).
    from tether.cli.demo import run_demo

    _data_dir()
    try:
        code = asyncio.run(run_demo(script, console, settings()))
    except Exception as error:
        unreachable(error)
        raise
    raise typer.Exit(code)


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
    # Imported here, not at the top: the HTTP server only this command runs would add its
    # load time to every other command's start.
    from tether.encryption import codec_server as codec

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
    taken = port_taken(host, port)
    if taken:  # before the banner: a server that never listens must not announce itself
        fail(taken, "stop that, or give this one another --port (and the web UI's "
                    "--codec-endpoint to match)")
    guarded = ("requests need the token" if token else
               f"no token: anyone on this machine who reaches {host}:{port} can decrypt "
               "(set TETHER_CODEC_TOKEN to ask for one)")
    console.print(Text(f"codec server on http://{host}:{port} · keys {', '.join(keys.ids)} · "
                       f"for the web UI at {', '.join(origins)} · answers to "
                       f"{', '.join(sorted(access.hosts))} · {guarded}"), soft_wrap=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(codec.serve(keys, host=host, port=port, access=access))


@app.command("stop-server")
def stop_server() -> None:
    """Stop the background dev server that `make demo` left running."""
    stopped = embedded.stop_detached(settings())
    console.print("stopped the dev server" if stopped else "no background dev server")
