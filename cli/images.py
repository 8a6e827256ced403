"""`tether image build`: sandbox images with more packages, and how the build shows."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, RenderableType
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text
from tether.cli.app import app
from tether.cli.errors import fail
from tether.cli.render import console, err, literal

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
    # Imported here, not at the top: Docker's client library, which only this command
    # needs, would add its load time to every other command's start.
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
