"""The worker's handle on its host's egress proxy: started on first need, one per worker.

The proxy itself (`proxy_process.py`) runs in an interpreter that has mitmproxy
(`TETHER_EGRESS_PYTHON`); this side opens and closes each sandbox's socket and keeps the
decisions the proxy reports, until the tool call that caused them takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import ssl
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tether.contracts.network import NetworkPolicy

SOCKET_NAME = "egress.sock"
CA_BUNDLE_NAME = "ca-bundle.pem"
"""Beside the socket, for a run with secrets: the system's CAs, TETHER_EGRESS_CA_FILE's and
the run's own CA, which the sandbox's tools trust (the directory is mounted read-only)."""
UPSTREAM_CA_NAME = "upstream-ca.pem"
PROCESS = Path(__file__).with_name("proxy_process.py")
START_TIMEOUT_S = 30.0
ANSWER_TIMEOUT_S = 10.0
NEEDS = "mitmproxy 11 and uvloop (`make deps` puts egress/requirements.lock in .venv/egress)"
MAX_SOCKET_PATH = 107
"""What `sockaddr_un` holds, less its terminating byte."""
KEPT_PER_SANDBOX = 1000
"""Decisions kept for a sandbox until a tool call takes them; past that the oldest go (a tool
that opens connections without end must not grow the worker's memory)."""

log = logging.getLogger("tether.egress")


def default_python() -> str:
    """`egress/bin/python` in the environment tether runs in: where `make deps` puts mitmproxy."""
    return str(Path(sys.prefix) / "egress" / "bin" / "python")


class EgressUnavailable(RuntimeError):
    """This worker can't run the egress proxy: runs that ask for network can't be served here."""


class SecretRefused(EgressUnavailable):
    """A run's secret names a variable this worker does not broker, or one it does not have.
    The message names the variable, never a value."""


def system_cas() -> bytes:
    """The worker's system CA bundle, as OpenSSL finds it; empty when there is none."""
    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.openssl_cafile):
        if path and os.path.isfile(path):
            return Path(path).read_bytes()
    return b""


@dataclass(frozen=True)
class Decision:
    host: str
    port: int
    allowed: bool
    reason: str = ""
    sent: int = 0
    received: int = 0

    @property
    def destination(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class EgressProxy:
    """Keyword-only: `python`, an interpreter with `egress/requirements.lock`; `on_decision`,
    called for every decision and for the bytes a tunnel moved after its decision (metrics),
    with whether it is a new request; `brokered`, the variables runs' secrets may name
    (TETHER_BROKERED_ENV), read from `environ` when a run's socket opens; `ca_file`, extra CAs
    for secret hosts (TETHER_EGRESS_CA_FILE); `sandbox_uid`, the uid the sandboxes' processes
    run as, whose alone each run's sockets are made (where the proxy may give them away)."""

    def __init__(self, *, python: str, directory: Path | None = None,
                 on_decision: Callable[[Decision, bool], None] | None = None,
                 brokered: Iterable[str] = (), ca_file: Path | None = None,
                 environ: Mapping[str, str] = os.environ, sandbox_uid: int | None = None) -> None:
        self.python = python
        self.sandbox_uid = sandbox_uid
        self._warned_shared = False
        self.brokered = frozenset(brokered)
        self.ca_file = ca_file
        self.environ = environ
        self.home = directory
        """Where the sandboxes' socket directories live. One that stays (the worker's data
        directory) lets the worker's successor open a socket again behind a sandbox's mount;
        None: a temporary one, removed when the proxy stops."""
        self.on_decision = on_decision
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._ids = itertools.count(1)
        self._answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._decisions: dict[str, list[Decision]] = defaultdict(list)
        self._open: set[str] = set()
        self._handed: set[str] = set()
        """The sandboxes whose listener the proxy accepts on itself (see `proxy_process.py`)."""
        self._keys: dict[str, str] = {}
        """A sandbox's container id → the name its socket was opened under (before it had an id)."""
        self._directory: Path | None = None
        self.port = 0
        """mitmproxy's listener on 127.0.0.1: reached only through a sandbox's socket, since a
        connection no socket relayed has no run and is refused."""

    async def open(self, sandbox: str, network: NetworkPolicy) -> str:
        """Opens the sandbox's socket; returns the host directory that holds it (mounted into
        the sandbox: a directory, so the socket may be made again behind the same mount)."""
        values = self._values(network)
        await self._start()
        assert self._directory is not None  # set by _start
        directory = self._directory / _short(sandbox)
        if len(str(directory / SOCKET_NAME)) > MAX_SOCKET_PATH:
            raise EgressUnavailable(f"the egress socket's path under {self._directory} is over"
                                    f" {MAX_SOCKET_PATH} bytes, past what a unix socket takes;"
                                    " set TETHER_DATA_DIR to a shorter directory")
        directory.mkdir(mode=0o755, exist_ok=True)
        allow = [{"host": d.host, "port": d.port} for d in network.destinations()]
        secrets = [{"host": s.host, "header": s.header, "prefix": s.prefix, "env": s.env}
                   for s in network.secrets or []]
        # The values go over the proxy's stdin only: nothing here logs a request.
        reply = await self._ask({"op": "open", "key": sandbox, "socket": str(directory / SOCKET_NAME),
                                 "allow": allow, "secrets": secrets, "values": values,
                                 "owner": self.sandbox_uid})
        if self.sandbox_uid is not None and not reply.get("private") and not self._warned_shared:
            self._warned_shared = True
            log.warning("the egress sockets can't be made the sandboxes' own (uid %d) by this"
                        " worker's user, so any local user may connect to them and use a run's way"
                        " out and its brokered secrets: run the worker as root, or where no one"
                        " else logs in", self.sandbox_uid)
        if secrets:
            self._write_bundle(directory, str(reply["ca"]).encode())
        self._open.add(sandbox)
        return str(directory)

    def _values(self, network: NetworkPolicy) -> dict[str, str]:
        """The values of the variables the run's secrets name, read now (a rotated one needs
        no restart), each checked against what this worker brokers."""
        values = {}
        for env in network.brokered():
            if env not in self.brokered:
                raise SecretRefused(
                    f"sandbox.network.secrets names {env}, which this worker does not broker: list it"
                    " in the worker's TETHER_BROKERED_ENV (comma-separated), or drop the secret")
            value = self.environ.get(env, "")
            if not value:
                raise SecretRefused(f"TETHER_BROKERED_ENV lists {env}, but the worker's environment"
                                    " has no value for it: set it where the worker starts")
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise SecretRefused(f"the value of {env} holds a control character (a line break"
                                    " would end the header): set it to the credential alone")
            values[env] = value
        return values

    def _write_bundle(self, directory: Path, run_ca: bytes) -> None:
        """The sandbox's trust bundle, replaced whole (a worker that takes a sandbox over
        writes its own CA's; tools that start later read it)."""
        extra = self.ca_file.read_bytes() if self.ca_file is not None else b""
        partial = directory / f".{CA_BUNDLE_NAME}.new"
        partial.write_bytes(b"\n".join(part.strip() for part in (system_cas(), extra, run_ca)
                                       if part.strip()) + b"\n")
        partial.chmod(0o644)
        partial.replace(directory / CA_BUNDLE_NAME)

    def made(self, sandbox: str, container_id: str) -> None:
        """The sandbox opened as `sandbox` is the container `container_id`: `take` and `close`
        know it by either."""
        self._keys[container_id] = sandbox

    async def close(self, sandbox: str) -> None:
        """Closes the sandbox's socket, ending its connections. Nothing when none is open."""
        sandbox = self._keys.pop(sandbox, sandbox)
        if sandbox not in self._open or self._process is None or self._process.returncode is not None:
            return
        await self._ask({"op": "close", "key": sandbox})
        self._open.discard(sandbox)
        self._handed.discard(sandbox)
        self._decisions.pop(sandbox, None)
        if self._directory is not None:
            shutil.rmtree(self._directory / _short(sandbox), ignore_errors=True)

    def take(self, sandbox: str) -> list[Decision]:
        """The sandbox's decisions since the last take."""
        return self._decisions.pop(self._keys.get(sandbox, sandbox), [])

    async def settle(self) -> None:
        """Returns once every decision the proxy made before now is recorded here (the proxy
        answers in order), so a tool call that just ended finds all of its own."""
        if self._open and self._process is not None and self._process.returncode is None:
            await self._ask({"op": "ping"})

    def handed(self, sandbox: str) -> bool:
        """Whether the sandbox's executor handed its tools' listener over, so the proxy
        accepts their connections itself (False under gVisor: the executor relays them)."""
        return self._keys.get(sandbox, sandbox) in self._handed

    def serves(self, sandbox: str) -> bool:
        """Whether the sandbox (by name or container id) has a socket open."""
        return self._keys.get(sandbox, sandbox) in self._open

    async def stop(self) -> None:
        process, self._process = self._process, None
        self._open.clear()
        self._handed.clear()
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
        if self._directory is not None and self.home is None:
            shutil.rmtree(self._directory, ignore_errors=True)
        self._directory = None

    async def _start(self) -> None:
        async with self._starting:
            if self._process is not None and self._process.returncode is None:
                return
            if self.home is None:
                self._directory = Path(tempfile.mkdtemp(prefix="tether-egress-"))
            else:
                self._directory = self.home
                self._directory.mkdir(parents=True, exist_ok=True)
            self._directory.chmod(0o711)  # the engine mounts a sandbox's directory from here
            try:
                self._process = await asyncio.create_subprocess_exec(
                    self.python, str(PROCESS), str(self._directory / "mitmproxy"),
                    *self._upstream_cas(),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=(self._directory / "proxy.log").open("wb"), limit=1 << 20)
            except OSError as error:
                raise EgressUnavailable(
                    f"the egress proxy can't start with {self.python!r}: {error.strerror}; set"
                    f" TETHER_EGRESS_PYTHON to an interpreter with {NEEDS}") from None
            assert self._process.stdout is not None
            try:
                ready = await asyncio.wait_for(self._process.stdout.readline(), START_TIMEOUT_S)
            except TimeoutError:
                ready = b""
            if b'"ready"' not in ready:
                with contextlib.suppress(ProcessLookupError):  # it may have exited already
                    self._process.kill()
                await self._process.wait()
                said = (self._directory / "proxy.log").read_text(errors="replace").strip()
                raise EgressUnavailable(
                    f"the egress proxy did not start with {self.python!r}:"
                    f" {said.splitlines()[-1] if said else 'no output'}; TETHER_EGRESS_PYTHON must"
                    f" name an interpreter with {NEEDS}")
            self.port = int(json.loads(ready)["port"])
            self._reader = asyncio.create_task(self._read(self._process), name="egress proxy")

    def _upstream_cas(self) -> list[str]:
        """The file the proxy checks secret hosts' certificates against: the system's CAs and
        `ca_file`'s. None when there are neither (mitmproxy's own bundle then)."""
        assert self._directory is not None
        cas = system_cas() + b"\n" + (self.ca_file.read_bytes() if self.ca_file is not None else b"")
        if not cas.strip():
            return []
        path = self._directory / UPSTREAM_CA_NAME
        path.write_bytes(cas)
        return [str(path)]

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        if process is None or process.stdin is None:
            raise EgressUnavailable("the egress proxy is not running")
        request_id = next(self._ids)
        answer = self._answers[request_id] = asyncio.get_running_loop().create_future()
        process.stdin.write(json.dumps(dict(request, id=request_id)).encode() + b"\n")
        await process.stdin.drain()
        try:
            reply = await asyncio.wait_for(answer, ANSWER_TIMEOUT_S)
        finally:
            self._answers.pop(request_id, None)
        if not reply.get("ok"):
            raise EgressUnavailable(f"the egress proxy refused {request['op']}: {reply.get('error')}")
        return reply

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "decision":
                self._record(message)
            elif message.get("event") == "listener":
                self._handed.add(str(message["key"]))
                log.info("egress: the sandbox %s handed its tools' listener to the proxy", message["key"])
            elif (answer := self._answers.get(message.get("id"))) is not None and not answer.done():
                answer.set_result(message)
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(EgressUnavailable("the egress proxy exited"))
        if self._process is process:
            self._open.clear()
            self._handed.clear()
            log.warning("the egress proxy exited (code %s); it starts again on next need",
                        await process.wait())

    def _record(self, message: dict[str, Any]) -> None:
        if str(message["key"]) not in self._open:
            return
        decision = Decision(host=str(message["host"]), port=int(message["port"]),
                            allowed=bool(message["allowed"]), reason=str(message.get("reason", "")),
                            sent=int(message.get("sent", 0)), received=int(message.get("received", 0)))
        log.info("egress %s %s for %s%s: %d bytes sent, %d received",
                 "allowed" if decision.allowed else "denied", decision.destination, message["key"],
                 f" ({decision.reason})" if decision.reason else "", decision.sent, decision.received)
        kept = self._decisions[str(message["key"])]
        more = bool(message.get("more"))  # bytes of a tunnel already counted as a request
        if self.on_decision is not None:
            with contextlib.suppress(Exception):  # metrics must never break the proxy's bookkeeping
                self.on_decision(decision, not more)
        if more and kept and (kept[-1].host, kept[-1].port) == (decision.host, decision.port):
            # What a tunnel moved after its tool's end, its decision not yet taken: one tunnel,
            # one decision. Taken already, the bytes go to the next call's (and its budget).
            last = kept[-1]
            kept[-1] = replace(last, sent=last.sent + decision.sent,
                               received=last.received + decision.received)
            return
        kept.append(decision)
        del kept[:-KEPT_PER_SANDBOX]


def _short(sandbox: str) -> str:
    """A socket's path must fit in 108 bytes: a digest of the sandbox's name, not the name."""
    return hashlib.sha256(sandbox.encode()).hexdigest()[:16]
