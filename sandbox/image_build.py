"""Sandbox images with a team's own packages: what `tether image build` does.

`build_image` makes an image derived from a tether sandbox image (by default
`tether-sandbox:latest`), with extra pip packages and Debian packages, that is still a hardened
tether sandbox: the executor, its label, the HEALTHCHECK and CMD come from the base unchanged;
the build runs as root, then the image goes back to `USER 10001:10001` and every setuid and
setgid bit is stripped again. A run uses it with `"sandbox": {"image": TAG}`.

The network is used while building only, never by a sandbox:
- pip packages are fetched on this machine, by its own pip and pip configuration (index,
  proxy, certificates), as wheels for the base's Python version and platform, which are found
  by running the base. The image installs them from the build context with `--no-index`, in a
  stage of its own, so the wheels never become a layer of the image.
- Debian packages are installed by apt inside the build, which then needs a network: the
  engine's default one, or the host's when the engine has no bridge network (an engine
  started with `--bridge=none`). A build without Debian packages has no network at all.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound

DEFAULT_BASE = "tether-sandbox:latest"
SANDBOX_USER = "10001:10001"
EXECUTOR_LABEL = "tether.executor"
LABEL_BUILD = "tether.image-build"
"""On every image a build makes (its stages too), with the build's id: what it leaves behind
when it fails, or its wheel stage when it succeeds, is found and removed by it."""
LABEL_BASE = "tether.image.base"
LABEL_BASE_ID = "tether.image.base-id"
LABEL_PIP = "tether.image.pip"
LABEL_APT = "tether.image.apt"
LABEL_PROBE = "tether.image-probe"
BUILD_TIMEOUT_S = 3600
PROBE_TIMEOUT_S = 60
LOG_LINES_KEPT = 30

_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_OPERATOR = r"(===|==|!=|<=|>=|~=|<|>)"
_VERSION = r"[A-Za-z0-9.*+!_-]+"
_PIP = re.compile(
    rf"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._, -]*\])?"
    rf"(\s*{_OPERATOR}\s*{_VERSION}(\s*,\s*{_OPERATOR}\s*{_VERSION})*)?"
)
_SGR = re.compile(r"\x1b\[[0-9;]*m")
"""The colours the classic builder puts around a step's stderr."""
_APT = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?")

PROBE = """
import json, platform, sys, sysconfig
libc, libc_version = platform.libc_ver()
print(json.dumps({"version": "%d.%d" % sys.version_info[:2],
                  "implementation": sys.implementation.name,
                  "abiflags": getattr(sys, "abiflags", ""),
                  "platform": sysconfig.get_platform(),
                  "libc": libc, "libc_version": libc_version}))
"""

# Installs the Debian packages named in /tmp/tether-apt.txt (names checked by `build_image`).
APT_SCRIPT = """set -eu
export DEBIAN_FRONTEND=noninteractive HOME=/root
command -v apt-get >/dev/null || { echo "tether: the base image has no apt-get"; exit 3; }
echo "tether: apt-get update"
apt-get update -q
echo "tether: installing Debian packages: $(tr '\\n' ' ' < /tmp/tether-apt.txt)"
apt-get install -y -q --no-install-recommends $(cat /tmp/tether-apt.txt)
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/tether-apt.txt
"""

# What the base's own Dockerfile does, again, for what the packages brought: no setuid or
# setgid file is left, and nothing of the build stays behind.
HARDEN_SCRIPT = """rm -rf /tmp/tether-* /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /root/.cache
find / -xdev -perm /6000 -type f -exec chmod a-s {} + 2>/dev/null || true
"""

# Run in the derived image as the sandbox user, with no network: prints the setuid and setgid
# files it can reach, which must be none.
VERIFY_SCRIPT = "python3 -c 'import sys' && find / -xdev -perm /6000 -type f 2>/dev/null; true"

Progress = Callable[[str, str], None]
"""Called with ("phase", what the build is doing now), ("done", what a phase found) and
("log", a line of pip's, apt's or the engine's output)."""


class ImageBuildError(RuntimeError):
    """An image could not be built; `hint` says what to do, `package` names the package that
    could not be found, when that was the reason."""

    def __init__(self, message: str, hint: str | None = None, *, package: str | None = None,
                 log: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.package = package
        self.log = list(log)


@dataclass(frozen=True)
class PythonTarget:
    """The base image's Python, as running it says: what the wheels are fetched for."""

    version: str
    implementation: str
    abiflags: str
    platform: str
    libc: str
    libc_version: str

    @property
    def arch(self) -> str:
        return re.sub(r"[-.]", "_", self.platform.partition("-")[2] or self.platform)

    def describe(self) -> str:
        return f"{self.implementation} {self.version} on {self.platform}"

    def pip_options(self) -> list[str]:
        """`pip download` options that select wheels this Python can install."""
        nodot = self.version.replace(".", "")
        options = ["--only-binary=:all:", "--python-version", self.version]
        if self.implementation == "cpython":
            options += ["--implementation", "cp", "--abi", f"cp{nodot}{self.abiflags}", "--abi", "none"]
            if "t" not in self.abiflags:
                options += ["--abi", "abi3"]
        elif self.implementation == "pypy":
            options += ["--implementation", "pp"]
        for platform in self.platforms():
            options += ["--platform", platform]
        return options

    def platforms(self) -> list[str]:
        """Platform tags from the newest the base's libc supports down to the oldest; pure
        Python wheels (`any`) fit every platform."""
        tags = []
        if self.platform.startswith("linux") and self.libc == "glibc":
            major, _, minor = self.libc_version.partition(".")
            if major == "2" and minor.isdigit():
                for number in range(int(minor), 4, -1):
                    tags.append(f"manylinux_2_{number}_{self.arch}")
                    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}.get(number)
                    if legacy:
                        tags.append(f"{legacy}_{self.arch}")
        tags.append(re.sub(r"[-.]", "_", self.platform))
        return tags


@dataclass(frozen=True)
class BuiltImage:
    """An image `build_image` made: use it as `"sandbox": {"image": tag}`."""

    tag: str
    image_id: str
    base: str
    base_id: str
    python: str
    pip: list[str] = field(default_factory=list)
    apt: list[str] = field(default_factory=list)
    network: str = "none"
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_image(engine: docker.DockerClient, tag: str, *, pip: Iterable[str] = (),
                apt: Iterable[str] = (), base: str = DEFAULT_BASE, network: str | None = None,
                progress: Progress | None = None,
                pip_command: Sequence[str] = (sys.executable, "-m", "pip")) -> BuiltImage:
    """Builds `tag` from the tether sandbox image `base` plus the `pip` and `apt` packages,
    and returns it once checked: the executor label kept, user 10001:10001, no setuid or
    setgid file. `network` is the build's network for apt (default: the engine's own, or the
    host's when the engine has no bridge network). Raises `ImageBuildError` saying what went
    wrong: a missing base, a package that can't be found (named), a failed step."""
    started = time.monotonic()
    say = progress or (lambda kind, text: None)
    pip, apt = _checked(tag, base, list(pip), list(apt))

    say("phase", f"checking the base image {base}")
    base_id = _base_image(engine, base)
    target = probe_python(engine, base)
    say("done", f"base {base}: {target.describe()}")

    build_id = uuid.uuid4().hex[:16]
    replaced = _tether_built(engine, tag)
    mode = _network(engine, network) if apt else "none"
    with tempfile.TemporaryDirectory(prefix="tether-image-") as scratch:
        context = Path(scratch)
        pip_tool = None
        if pip:
            say("phase", f"fetching pip packages for {target.describe()}: {' '.join(pip)}")
            pip_tool = _fetch_wheels(pip_command, target, pip, context / "pip", say)
            wheels = sorted(p.name for p in (context / "pip" / "wheels").iterdir())
            say("done", f"fetched {len(wheels)} wheels: {' '.join(wheels)}")
        (context / "Dockerfile").write_text(dockerfile(base, build_id, pip=bool(pip), apt=bool(apt),
                                                       pip_tool=pip_tool))
        if apt:
            (context / "apt.txt").write_text("\n".join(apt) + "\n")
        say("phase", "building the image" + (f" (network {mode} for apt)" if apt else ""))
        try:
            _build(engine, context, tag, mode, build_id, say, labels={
                LABEL_BASE: base, LABEL_BASE_ID: base_id, LABEL_PIP: json.dumps(pip),
                LABEL_APT: json.dumps(apt)})
        finally:
            _remove_leftovers(engine, build_id, keep=tag)
    say("done", f"built {tag}")

    say("phase", f"checking {tag} is still a hardened sandbox")
    image_id = _verify(engine, tag)
    say("done", f"{tag}: executor kept, user {SANDBOX_USER}, no setuid files")
    if replaced and replaced != image_id:
        _remove_quietly(engine, replaced)
    return BuiltImage(tag=tag, image_id=image_id, base=base, base_id=base_id, python=target.version,
                      pip=pip, apt=apt, network=mode, seconds=round(time.monotonic() - started, 2))


def dockerfile(base: str, build_id: str, *, pip: bool, apt: bool, pip_tool: str | None) -> str:
    """The derived image's Dockerfile. Exec-form RUNs of fixed scripts: no package name is
    ever part of a shell command line; apt reads its names from a file."""
    lines = ["# Made by `tether image build`: a tether sandbox image with more packages."]
    if pip:
        install = ["python3", f"/tmp/tether-pip/tool/{pip_tool}/pip", "install",
                   "--root", "/tmp/tether-root", "--no-index", "--find-links", "/tmp/tether-pip/wheels",
                   "--no-cache-dir", "--break-system-packages", "--ignore-installed",
                   "--no-warn-script-location", "--root-user-action=ignore",
                   "--disable-pip-version-check", "-r", "/tmp/tether-pip/requirements.txt"]
        lines += [
            "# The wheels stage: pip installs the fetched wheels under /tmp/tether-root, offline.",
            f"FROM {base} AS wheels",
            f"LABEL {LABEL_BUILD}={build_id}",
            "USER 0:0",
            "ENV HOME=/root",
            "COPY pip /tmp/tether-pip",
            f"RUN {json.dumps(install)}",
            "",
        ]
    lines += [
        f"FROM {base}",
        f"LABEL {LABEL_BUILD}={build_id}",
        "USER 0:0",
    ]
    if apt:
        lines += ["COPY apt.txt /tmp/tether-apt.txt",
                  f"RUN {json.dumps(['/bin/sh', '-c', APT_SCRIPT])}"]
    if pip:
        lines += ["COPY --from=wheels /tmp/tether-root/ /"]
    lines += [
        f"RUN {json.dumps(['/bin/sh', '-c', HARDEN_SCRIPT])}",
        f"USER {SANDBOX_USER}",
    ]
    return "\n".join(lines) + "\n"


def probe_python(engine: docker.DockerClient, image: str) -> PythonTarget:
    """The image's Python version and platform, from running it with no network."""
    code, output = _probe(engine, image, ["python3", "-c", PROBE])
    try:
        if code != 0:
            raise ValueError(output)
        found = json.loads(output.strip().splitlines()[-1])
        return PythonTarget(**{k: str(found[k]) for k in (
            "version", "implementation", "abiflags", "platform", "libc", "libc_version")})
    except (ValueError, KeyError, IndexError):
        raise ImageBuildError(f"the base image {image} has no working python3: {output.strip()[-300:]}",
                              "a tether sandbox image runs its executor with python3") from None


def _checked(tag: str, base: str, pip: list[str], apt: list[str]) -> tuple[list[str], list[str]]:
    for name, reference in (("tag", tag), ("base image", base)):
        if not _REFERENCE.fullmatch(reference):
            raise ImageBuildError(f"{reference!r} is not an image name a {name} can have")
    if _same_image(tag, DEFAULT_BASE) or _same_image(tag, base):
        raise ImageBuildError(f"{tag} would replace the base image it is built on",
                              "choose another tag, such as my-sandbox:1")
    pip = [p.strip() for p in pip]
    apt = [a.strip() for a in apt]
    if not pip and not apt:
        raise ImageBuildError("nothing to add to the image", "name packages with --pip and --apt")
    for requirement in pip:
        if not _PIP.fullmatch(requirement):
            raise ImageBuildError(
                f"--pip {requirement!r} is not a requirement tether accepts",
                "a name, optional [extras] and version specifiers, such as pandas==2.2.3",
                package=requirement)
    for package in apt:
        if not _APT.fullmatch(package):
            raise ImageBuildError(f"--apt {package!r} is not a Debian package name",
                                  "a name, optionally =version, such as jq or git=1:2.39.5-0+deb12u2",
                                  package=package)
    return pip, apt


def _same_image(a: str, b: str) -> bool:
    def full(reference: str) -> str:
        return reference if ":" in reference.rpartition("/")[2] else f"{reference}:latest"
    return full(a) == full(b)


def _base_image(engine: docker.DockerClient, base: str) -> str:
    try:
        image = engine.images.get(base)
    except ImageNotFound:
        if _same_image(base, DEFAULT_BASE):
            raise ImageBuildError(f"the sandbox image {base} is not on this engine",
                                  "build it first with `make image`") from None
        raise ImageBuildError(f"the base image {base} is not on this engine",
                              "build it first: with `make image` (tether-sandbox:latest) or "
                              "`tether image build`") from None
    if (image.labels or {}).get(EXECUTOR_LABEL) != "1":
        raise ImageBuildError(
            f"{base} is not a tether sandbox image (it has no {EXECUTOR_LABEL} label)",
            f"build on {DEFAULT_BASE} (`make image`) or on an image `tether image build` made")
    return str(image.id)


def _network(engine: docker.DockerClient, wanted: str | None) -> str:
    if wanted:
        return wanted
    names = {network.name for network in engine.networks.list()}
    return "default" if "bridge" in names else "host"


def _fetch_wheels(pip_command: Sequence[str], target: PythonTarget, requirements: list[str],
                  into: Path, say: Progress) -> str:
    """Downloads wheels for `requirements` and their dependencies, and a pip to install them
    with, for the base's Python; returns the pip wheel's file name."""
    wheels, tool = into / "wheels", into / "tool"
    wheels.mkdir(parents=True)
    tool.mkdir()
    (into / "requirements.txt").write_text("\n".join(requirements) + "\n")
    download = [*pip_command, "download", "--disable-pip-version-check", "--no-input",
                "--progress-bar", "off", *target.pip_options()]
    _pip([*download, "--no-deps", "--dest", str(tool), "pip"], target, say)
    _pip([*download, "--dest", str(wheels), *requirements], target, say)
    [pip_wheel] = [p.name for p in tool.glob("pip-*.whl")]
    return pip_wheel


def _pip(command: list[str], target: PythonTarget, say: Progress) -> None:
    log: deque[str] = deque(maxlen=LOG_LINES_KEPT)
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace")
    except OSError as error:
        raise ImageBuildError(f"cannot run pip on this machine: {error}",
                              "install pip beside tether: python -m ensurepip") from None
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        log.append(line)
        say("log", line)
    if process.wait() == 0:
        return
    text = "\n".join(log)
    if "No module named pip" in text:
        raise ImageBuildError("pip is not installed beside tether, and it fetches the packages",
                              "install it: python -m ensurepip", log=log)
    missing = re.search(r"No matching distribution found for (\S+)", text)
    if missing:
        name = missing.group(1)
        versions = re.search(r"satisfies the requirement \S+ \(from versions: ([^)]*)\)", text)
        listed = versions.group(1).split(", ") if versions else ["none"]
        hint = (f"no wheel of {name} for {target.describe()} on the package index: check the name; "
                "tether installs wheels only, so a package must publish one")
        if listed != ["none"]:
            hint = f"versions with a wheel for {target.describe()}: {', '.join(listed[-8:])}"
        raise ImageBuildError(f"pip package not found: {name}", hint, package=name, log=log)
    conflict = re.search(r"^ERROR: (Cannot install .*?)\.?$", text, re.MULTILINE)
    if conflict:
        raise ImageBuildError(f"the pip packages conflict: {conflict.group(1)}",
                              "loosen or remove the version specifiers", log=log)
    raise ImageBuildError("fetching the pip packages failed", _last(log), log=log)


def _build(engine: docker.DockerClient, context: Path, tag: str, network: str, build_id: str,
           say: Progress, *, labels: dict[str, str]) -> None:
    log: deque[str] = deque(maxlen=LOG_LINES_KEPT)
    seen: list[str] = []
    error = None
    pending = ""
    options: dict[str, Any] = {"network_mode": network} if network != "default" else {}
    try:
        stream = engine.api.build(path=str(context), tag=tag, rm=True, forcerm=True, nocache=True,
                                  pull=False, decode=True, timeout=BUILD_TIMEOUT_S, labels=labels,
                                  **options)
        for chunk in stream:
            if "error" in chunk:
                error = str(chunk["error"]).strip()
            text = pending + str(chunk.get("stream", ""))
            *lines, pending = text.split("\n")
            for line in lines:
                line = _SGR.sub("", line)
                log.append(line)
                if line.startswith(("E: ", "tether:")):
                    seen.append(line)
                say("log", line)
    except APIError as failure:
        error = str(failure.explanation or failure)
    if pending:
        log.append(_SGR.sub("", pending))
    if error is None:
        return
    raise _build_failure(error, seen, log, network)


def _build_failure(error: str, seen: list[str], log: deque[str], network: str) -> ImageBuildError:
    text = "\n".join(seen)
    for pattern in (r"E: Unable to locate package (\S+)",
                    r"E: Package '([^']+)' has no installation candidate",
                    r"E: Version '[^']+' for '([^']+)' was not found"):
        found = re.search(pattern, text)
        if found:
            name = found.group(1)
            return ImageBuildError(f"Debian package not found: {name}",
                                   "check its name for the base's Debian release "
                                   f"(apt-cache search {name.partition('=')[0]})", package=name, log=log)
    if "tether: the base image has no apt-get" in text:
        return ImageBuildError("the base image has no apt-get: --apt needs a Debian-based image",
                               log=log)
    if re.search(r"Temporary failure resolving|Could not resolve|Failed to fetch", "\n".join(log)):
        return ImageBuildError(f"apt could not reach its mirror from the build (network {network})",
                               "pass --network host, or check the engine's network", log=log)
    if "manifest unknown" in error or "pull access denied" in error or "No such image" in error:
        return ImageBuildError(f"the build could not find its base image: {error}", log=log)
    return ImageBuildError(f"the image build failed: {error}", _last(log), log=log)


def _last(log: Iterable[str]) -> str:
    lines = [line for line in log if line.strip()]
    return "last output: " + " | ".join(lines[-5:]) if lines else "no output"


def _remove_leftovers(engine: docker.DockerClient, build_id: str, *, keep: str) -> None:
    """Removes the images the build made besides `keep` (the wheel stage, or every step of a
    failed build), leaving the tagged image and its own layers."""
    try:
        kept = str(engine.images.get(keep).attrs["Id"])
    except (ImageNotFound, APIError):
        kept = ""
    while True:
        removed = False
        for image in engine.api.images(all=True, filters={"label": f"{LABEL_BUILD}={build_id}"}):
            if image["Id"] == kept:
                continue
            try:
                engine.api.remove_image(image["Id"], force=False, noprune=False)
                removed = True
            except NotFound:
                removed = True
            except APIError:  # a layer of the kept image, or a parent of one still to go
                continue
        if not removed:
            return


def _tether_built(engine: docker.DockerClient, tag: str) -> str | None:
    """The id of the image `tag` names now, when an earlier `build_image` made it: a rebuild
    removes it, unless a container still uses it."""
    try:
        image = engine.images.get(tag)
    except ImageNotFound:
        return None
    return str(image.id) if LABEL_BUILD in (image.labels or {}) else None


def _remove_quietly(engine: docker.DockerClient, image_id: str) -> None:
    try:
        engine.api.remove_image(image_id, force=False, noprune=False)
    except APIError:  # in use, or already gone
        pass


def _verify(engine: docker.DockerClient, tag: str) -> str:
    image = engine.images.get(tag)
    config = image.attrs.get("Config") or {}
    problems = []
    if (image.labels or {}).get(EXECUTOR_LABEL) != "1":
        problems.append(f"the {EXECUTOR_LABEL} label is missing")
    if config.get("User") != SANDBOX_USER:
        problems.append(f"its user is {config.get('User')!r}, not {SANDBOX_USER}")
    code, output = _probe(engine, tag, ["/bin/sh", "-c", VERIFY_SCRIPT], user=SANDBOX_USER)
    if code != 0:
        problems.append(f"python3 does not run as {SANDBOX_USER}: {output.strip()[-300:]}")
    elif output.strip():
        problems.append(f"setuid or setgid files remain: {' '.join(output.split())[:300]}")
    if problems:
        try:
            engine.images.remove(str(image.id), force=True)
        except APIError:
            pass
        raise ImageBuildError(f"{tag} is not a hardened tether sandbox: {'; '.join(problems)}",
                              "build on a tether sandbox image (`make image`)")
    return str(image.id)


def _probe(engine: docker.DockerClient, image: str, command: list[str],
           user: str | None = None) -> tuple[int, str]:
    """Runs `command` in a throwaway container of `image` with no network and no
    capabilities; returns its exit code and output. The container is always removed."""
    container = engine.containers.create(
        image, command, name=f"tether-image-probe-{uuid.uuid4().hex[:12]}",
        labels={LABEL_PROBE: "1"}, network_mode="none", cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], read_only=True, user=user,
        tmpfs={"/workspace": "size=16m", "/tmp": "size=16m"})
    try:
        container.start()
        status = container.wait(timeout=PROBE_TIMEOUT_S)
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        return int(status.get("StatusCode", 1)), output
    finally:
        try:
            container.remove(force=True)
        except NotFound:
            pass
