"""What `tether dev` says and does around the processes it runs: which server it uses (and
whether that server's Web UI decodes with this session's codec server), and how it stops
its worker, with the second Ctrl-C that stops it at once."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import urllib.request
from types import FrameType
from urllib.parse import urlsplit

from rich.text import Text
from tether.cli.render import console, err, literal


def joined_server(address: str, *, ui_port: int, codec_endpoint: str | None) -> None:
    """Says that `tether dev` uses a server it did not start. With keys (`codec_endpoint`,
    the one this session gives the Web UI), says when that server's Web UI was not given it:
    that UI would show the runs' payloads encrypted, with nothing saying why."""
    console.print(literal(f"using the Temporal server already running at {address} (started "
                          "elsewhere: Ctrl-C here leaves it running)"), soft_wrap=True)
    if codec_endpoint is None:
        return
    given = ui_codec_endpoint(ui_port)
    if given == codec_endpoint:
        return
    why = (f"no web UI answers on port {ui_port}, TETHER_UI_PORT" if given is None
           else "it has no codec endpoint" if not given
           else f"it calls {_origin(given)} with another token" if _origin(given) == _origin(codec_endpoint)
           else f"it calls {_origin(given)}")
    err.print(Text("note: ", "yellow") + literal(
        f"its web UI was not given this codec server ({why}), so it shows the runs' payloads "
        "encrypted; to have them decoded there, stop that server and run `tether dev` again, "
        "or start it with `tether server` and the same TETHER_CODEC_TOKEN as here", "yellow"),
        soft_wrap=True)


def ui_codec_endpoint(ui_port: int) -> str | None:
    """The codec endpoint the Temporal Web UI on `ui_port` gives browsers ("" for none);
    None when no Web UI answers there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/api/v1/settings", timeout=3) as answer:
            settings = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    codec = settings.get("Codec") if isinstance(settings, dict) else None
    return str((codec or {}).get("Endpoint") or "")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """A signal handler: the signal stops `tether dev` as Ctrl-C does."""
    raise KeyboardInterrupt


def _say(text: Text) -> None:
    with contextlib.suppress(OSError):  # after a SIGHUP, the terminal may be gone
        err.print(text, soft_wrap=True)


def stop_worker(process: subprocess.Popen[bytes], drain_seconds: float) -> None:
    """Stops the worker as Ctrl-C asks: it drains, which can take `drain_seconds` while a run
    (one waiting for approval, say) keeps a sandbox on this host. Says so; from then on,
    Ctrl-C (or SIGTERM, SIGHUP) kills it at once, which loses nothing: the runs are in
    Temporal, their sandboxes stay, and the next worker with this worker id takes both up.
    A handler, not KeyboardInterrupt, so that no moment of the stopping can miss it."""
    killed = False

    def at_once(signum: int, frame: FrameType | None) -> None:
        nonlocal killed
        killed = True
        process.kill()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, at_once)
    _say(Text("stopping: ", "yellow") + literal(
        f"the worker lets its tool calls in flight finish and drains, waiting up to "
        f"{drain_seconds:g} s (TETHER_DRAIN_SECONDS) for runs with a sandbox here, such as one "
        "waiting for approval, to move on. Ctrl-C again stops it now: nothing is lost, the "
        "next `tether dev` takes its runs up where they are", "yellow"))
    _ask_to_stop(process, drain_seconds)
    if killed:
        _say(literal("stopped the worker at once: its runs and their sandboxes wait for the "
                     "next worker", "yellow"))


def _ask_to_stop(process: subprocess.Popen[bytes], drain_seconds: float) -> None:
    """SIGTERM, which the worker takes as Ctrl-C: it drains. Not SIGINT, which in a worker
    still importing its modules would raise there and print a traceback; SIGTERM ends such
    a worker quietly, with nothing to drain yet. Killed if its drain overruns."""
    process.terminate()
    try:
        process.wait(timeout=drain_seconds + 10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
