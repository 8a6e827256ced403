"""`tether image build`: sandbox images with a team's own packages, built on this machine's
engine (no registry, no bridge network) and still hardened tether sandboxes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.errors import ImageNotFound
from temporalio.client import Client
from tether import client as tether
from tether.contracts import SandboxSpec
from tether.sandbox.image_build import (
    DEFAULT_BASE,
    LABEL_BUILD,
    BuiltImage,
    ImageBuildError,
    PythonTarget,
    build_image,
    dockerfile,
)

from tests.helpers import sandboxes
from tests.sandbox.direct import call, direct_labels
from tests.scripts import scripted_run, turn

ROOT = Path(__file__).resolve().parents[2]
PIP_PACKAGE, PIP_MODULE = "tabulate", "tabulate"
APT_PACKAGE = "jq"


def new_tag() -> str:
    return f"tether-test-image-{uuid.uuid4().hex[:10]}:1"


def build_images() -> set[str]:
    """Every image (layers too) any `build_image` made that is still on the engine."""
    return {image["Id"] for image in sandboxes().engine.api.images(
        all=True, filters={"label": LABEL_BUILD})}


def remove_image(tag: str) -> None:
    try:
        sandboxes().engine.images.remove(tag, force=True)
    except ImageNotFound:
        pass


@pytest.fixture(scope="module")
def built(docker_engine) -> Iterator[tuple[BuiltImage, list[tuple[str, str]]]]:
    """One image with a pip and a Debian package, removed with every layer after the module."""
    before = build_images()
    events: list[tuple[str, str]] = []
    tag = new_tag()
    try:
        image = build_image(docker_engine, tag, pip=[PIP_PACKAGE], apt=[APT_PACKAGE],
                            progress=lambda kind, text: events.append((kind, text)))
        yield image, events
    finally:
        remove_image(tag)
    assert build_images() == before, "the build left images behind"


def test_the_image_has_the_packages_and_the_base_hardening(built, docker_engine):
    image, events = built
    assert image.pip == [PIP_PACKAGE] and image.apt == [APT_PACKAGE]
    assert image.python.startswith("3.")
    derived = docker_engine.images.get(image.tag)
    base = docker_engine.images.get(DEFAULT_BASE)
    config, base_config = derived.attrs["Config"], base.attrs["Config"]
    assert derived.labels["tether.executor"] == "1"
    assert config["User"] == "10001:10001"
    assert config["Cmd"] == base_config["Cmd"]
    assert config["Healthcheck"] == base_config["Healthcheck"]
    assert config["WorkingDir"] == "/workspace"
    assert derived.labels["tether.image.base-id"] == base.id
    assert json.loads(derived.labels["tether.image.pip"]) == [PIP_PACKAGE]
    # The progress display saw each phase, and the engine's and apt's output.
    phases = [text for kind, text in events if kind == "phase"]
    assert any("fetching pip packages" in p for p in phases)
    assert any("building the image" in p for p in phases)
    assert any("hardened sandbox" in p for p in phases)
    assert any(kind == "log" and "Setting up jq" in text for kind, text in events)


async def test_a_sandbox_from_the_image_runs_the_packages_as_10001_with_no_network(built):
    image, _ = built
    container = await asyncio.to_thread(
        sandboxes().create, SandboxSpec(image=image.tag), direct_labels(),
        name=f"tether-test-{uuid.uuid4().hex[:12]}")
    try:
        assert container.attrs["HostConfig"]["NetworkMode"] == "none"
        result = await call(container.id, (
            f"id -u; id -g; {APT_PACKAGE} --version; "
            f"python3 -c 'import {PIP_MODULE}; print({PIP_MODULE}.__name__, \"imported\")'; "
            "echo '{\"a\": [1, 2]}' | jq -c .a; ls /sys/class/net"))
        assert result.exit_code == 0, result
        uid, gid, jq, imported, parsed, interfaces = result.stdout.split("\n")[:6]
        assert (uid, gid) == ("10001", "10001")
        assert jq.startswith("jq-") and imported == "tabulate imported" and parsed == "[1,2]"
        assert interfaces == "lo"  # network none: loopback only
        setuid = await call(container.id, "find / -xdev -perm /6000 -type f 2>/dev/null; true")
        assert setuid.stdout == ""
        # The workspace is the sandbox's own, and its only sizeable writable place.
        written = await call(container.id, "echo kept > /workspace/f && cat /workspace/f && "
                                           "touch /usr/local/x 2>&1; true")
        assert written.stdout.startswith("kept\n") and "Read-only file system" in written.stdout
    finally:
        await asyncio.to_thread(sandboxes().remove, container.id)


async def test_a_run_uses_the_image_through_its_sandbox_spec(
    built, temporal_client: Client, worker: str
):
    image, _ = built
    result = await tether.run(
        temporal_client,
        scripted_run("packages",
                     turn(shell=f"python3 -c 'import {PIP_MODULE}' && {APT_PACKAGE} --version"),
                     turn("{{last_output}}"), sandbox={"image": image.tag}),
        task_queue=worker)
    assert result.status == "completed", result
    assert result.output.strip().startswith("jq-")


def test_a_missing_base_says_to_build_it(docker_engine):
    with pytest.raises(ImageBuildError) as raised:
        build_image(docker_engine, new_tag(), pip=["six"], base="tether-no-such-base:1")
    assert "tether-no-such-base:1" in raised.value.message
    assert "is not on this engine" in raised.value.message
    assert "make image" in (raised.value.hint or "")


def test_a_base_that_is_not_a_tether_sandbox_is_refused(docker_engine):
    tag = new_tag()
    docker_engine.images.build(
        fileobj=_dockerfile(f"FROM {DEFAULT_BASE}\nLABEL tether.executor=0\n"), tag=tag, rm=True,
        network_mode="none")
    try:
        with pytest.raises(ImageBuildError, match="is not a tether sandbox image"):
            build_image(docker_engine, new_tag(), pip=["six"], base=tag)
    finally:
        remove_image(tag)


def test_a_pip_package_that_does_not_exist_is_named(docker_engine):
    before = build_images()
    missing = "tether-no-such-package-9f3a"
    with pytest.raises(ImageBuildError) as raised:
        build_image(docker_engine, new_tag(), pip=["six", missing])
    assert raised.value.message == f"pip package not found: {missing}"
    assert raised.value.package == missing
    assert build_images() == before


def test_a_debian_package_that_does_not_exist_is_named_and_nothing_is_left(docker_engine):
    before = build_images()
    missing = "tether-no-such-deb-9f3a"
    tag = new_tag()
    with pytest.raises(ImageBuildError) as raised:
        build_image(docker_engine, tag, apt=[APT_PACKAGE, missing])
    assert raised.value.message == f"Debian package not found: {missing}"
    assert raised.value.package == missing
    assert build_images() == before
    with pytest.raises(ImageNotFound):
        docker_engine.images.get(tag)


@pytest.mark.parametrize(("pip", "apt"), [
    (["six; rm -rf /"], []), (["--index-url=file:///tmp/evil-index/"], []), (["six\nRUN id"], []),
    ([], ["jq;id"]), ([], ["-o=APT::x"]), ([], ["$(id)"]),
])
def test_names_that_are_not_packages_are_refused_before_anything_runs(pip, apt):
    with pytest.raises(ImageBuildError, match="is not a"):
        build_image(None, new_tag(), pip=pip, apt=apt)  # type: ignore[arg-type]


def test_a_tag_that_would_replace_the_base_is_refused():
    for tag in ("tether-sandbox:latest", "tether-sandbox"):
        with pytest.raises(ImageBuildError, match="would replace the base"):
            build_image(None, tag, pip=["six"])  # type: ignore[arg-type]
    with pytest.raises(ImageBuildError, match="nothing to add"):
        build_image(None, new_tag())  # type: ignore[arg-type]


def test_wheels_are_fetched_for_the_base_python_and_the_image_ends_unprivileged():
    target = PythonTarget(version="3.11", implementation="cpython", abiflags="",
                          platform="linux-x86_64", libc="glibc", libc_version="2.36")
    options = target.pip_options()
    assert options[options.index("--python-version") + 1] == "3.11"
    platforms = target.platforms()
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert {"manylinux2014_x86_64", "manylinux_2_17_x86_64", "linux_x86_64"} <= set(platforms)
    text = dockerfile("tether-sandbox:latest", "b1", pip=True, apt=True, pip_tool="pip-1-py3-none-any.whl")
    lines = text.strip().splitlines()
    assert lines[-1] == "USER 10001:10001"
    assert "chmod a-s" in lines[-2]
    assert "--no-index" in text and "--find-links" in text


async def test_the_cli_builds_with_json_and_names_a_missing_package(
    docker_engine, tmp_path: Path
):
    tag = new_tag()
    before = build_images()
    try:
        code, out, err = await tether_cli("image", "build", tag, "--pip", "six", "--json")
        assert code == 0, err
        done = json.loads(out)
        assert done["status"] == "built" and done["tag"] == tag and done["pip"] == ["six"]
        assert done["network"] == "none"  # no Debian packages: the build had no network at all
        assert docker_engine.images.get(tag).id == done["image_id"]
    finally:
        remove_image(tag)
    code, out, err = await tether_cli("image", "build", new_tag(), "--apt", "tether-no-such-deb-9f3a")
    assert code == 2
    assert "error: Debian package not found: tether-no-such-deb-9f3a" in err
    assert build_images() == before


async def tether_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli", *args, cwd=ROOT, env={**os.environ, "COLUMNS": "300"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=600)
    return process.returncode or 0, stdout.decode(), stderr.decode()


def _dockerfile(text: str) -> io.BytesIO:
    return io.BytesIO(text.encode())
