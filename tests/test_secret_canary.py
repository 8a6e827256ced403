"""Secret canary: a unique secret, given to a worker as an unrelated environment variable, as
its model's API key and as a function tool's credential, appears nowhere a run leaves
anything: not in the run's history (decoded, and as the server returns it), the dev server's
database file, the trace file, the worker's log, the conversation store, or the tool output
the model read. Not raw, not in base64 (standard or URL-safe, with or without padding, at
each of the three alignments a secret can take inside a longer encoded text), not in hex.

The run is real: a real worker process with an environment and a log of its own, a dev
server of the test's own writing its SQLite file, a model behind an OpenAI-compatible loopback
server that checks the key (and a primary one that refuses it, echoing it back in its error as
OpenAI's 401 does), a shell call in a real sandbox that prints its environment, and the
function tool that signs a request with its credential.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tether import client as tether

from tests.helpers import history_text
from tests.llm.test_agent_runs_on_providers import openai_chunks
from tests.llm.wire_servers import ENV_READ_BY_TETHER_OR_SDKS, ProviderServer
from tests.test_temporal_unreachable import DevServer, WorkerSubprocess
from tests.tools_canary import TOKEN_ENV, signature

pytestmark = pytest.mark.timeout(180)

UNRELATED_ENV = "BILLING_DB_PASSWORD"
MODEL_KEY_ENV = "CANARY_MODEL_API_KEY"
PRINT_ENVIRONMENT = "env; echo '-- the executor:'; tr '\\0' '\\n' < /proc/1/environ 2>&1 || true"
"""The executor's environment is not the tools' to read (it is not dumpable): where a tool
could read it, it is printed too."""


def encodings(secret: str) -> dict[str, bytes]:
    """Every form in which the secret would be found. Base64 encodes three bytes at a time, so
    a secret inside a longer text is encoded from wherever its first whole group starts:
    from its byte 0, 1 or 2. The whole groups from each offset are found wherever the secret
    sits; padded and unpadded forms are for a secret encoded on its own."""
    raw = secret.encode()
    forms = {"raw": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode()}
    for offset in (0, 1, 2):
        rest = raw[offset:]
        whole = rest[:len(rest) - len(rest) % 3]
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name} from byte {offset}"] = encode(whole)
            forms[f"{name} from byte {offset}, padded"] = encode(rest)
            forms[f"{name} from byte {offset}, unpadded"] = encode(rest).rstrip(b"=")
    return forms


def found(data: bytes | str, secret: str) -> list[str]:
    """The forms of `secret` that `data` contains."""
    blob = data.encode() if isinstance(data, str) else data
    return [form for form, needle in encodings(secret).items() if needle in blob]


def test_the_search_finds_a_secret_in_every_encoding_at_every_alignment():
    secret = f"canary-{secrets.token_hex(8)}"
    for prefix in (b"", b"x", b"xy", b"xyz"):
        text = prefix + secret.encode() + b"tail"
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            assert found(b"[" + encode(text) + b"]", secret), (prefix, encode)
        assert found(text.hex(), secret)
        assert found(text.hex().upper(), secret)
    assert not found(b"nothing here" * 50, secret)


def files_under(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def tool_messages(request_body: dict) -> list[dict]:
    return [m for m in request_body["messages"] if m["role"] == "tool"]


@pytest.fixture
def secret() -> str:
    return f"tc{secrets.token_hex(20)}"


@pytest.fixture
def model_servers(secret: str) -> Iterator[tuple[ProviderServer, ProviderServer]]:
    """One that refuses the key, echoing it in its 401; one that takes it and answers."""
    servers = [ProviderServer("openai", "sk-a-key-the-worker-does-not-have"),
               ProviderServer("openai", secret)]
    for server in servers:
        server.start()
    yield servers[0], servers[1]
    for server in servers:
        server.stop()


async def test_a_secret_given_to_the_worker_appears_nowhere_a_run_leaves_anything(
    tmp_path: Path, secret: str, model_servers: tuple[ProviderServer, ProviderServer],
    docker_engine,
):
    visible = f"visible-{uuid.uuid4().hex}"  # a control: where the run's text is, it is found
    refusing, model = model_servers
    data_dir, trace_file, log_file = tmp_path / "data", tmp_path / "traces.jsonl", tmp_path / "worker.log"

    server = DevServer(tmp_path)
    server.start()
    environment: dict[str, str | None] = {name: None for name in ENV_READ_BY_TETHER_OR_SDKS} | {
        UNRELATED_ENV: secret,        # 1. an unrelated variable of the worker's
        MODEL_KEY_ENV: secret,        # 2. the model's API key, named by the worker's endpoints
        TOKEN_ENV: secret,            # 3. the function tool's credential
        "TETHER_TOOLS": "tests.tools_canary:signed_order_lookup",
        # The worker's endpoints, each reading the model's key from the variable it names.
        "TETHER_MODEL_ENDPOINTS": json.dumps({
            name: {"provider": "openai", "base_url": wire.base_url, "api_key_env": MODEL_KEY_ENV}
            for name, wire in (("refusing", refusing), ("canary", model))}),
        "TETHER_TRACE_FILE": str(trace_file),
    }
    worker = WorkerSubprocess(address=server.address, data_dir=data_dir, log_file=log_file,
                              env=environment)
    try:
        worker.start()
        client = await tether.connect(address=server.address)
        await worker.wait_polling(client)

        model.reply_stream(openai_chunks("Checking the order and the sandbox.", [
            ("call_env", "shell", {"command": PRINT_ENVIRONMENT}),
            ("call_order", "signed_order_lookup", {"order_id": "A-7"}),
        ]))
        model.reply_stream(openai_chunks(f"Order A-7 has shipped ({visible})."))
        spec = {"provider": "openai", "name": "gpt-4o-mini"}
        handle = await tether.start_run(client, {
            "task": f"Has order A-7 shipped? ({visible})",
            "model": {**spec, "endpoint": "refusing"},
            "fallback_models": [{**spec, "endpoint": "canary"}],
            "tools": ["shell", "signed_order_lookup"],
            "budget": {"max_steps": 4},
        }, task_queue=worker.queue)
        result = await handle.result()
        assert result.status == "completed", result
        assert result.output == f"Order A-7 has shipped ({visible})."

        # The secret did its three jobs: the key reached the model server, which served both
        # steps; the refusing server got it too and echoed it back in its 401; the tool
        # signed with it.
        assert [r.key for r in model.requests] == [secret, secret]
        assert refusing.requests and all(r.key == secret for r in refusing.requests)
        steps = await tether.get_transcript(client, handle.id)
        assert all("401" in (step.note or "") for step in steps), [s.note for s in steps]
        [shell, order] = steps[0].tool_results
        assert shell.exit_code == 0 and "PATH=" in shell.stdout and "-- the executor:" in shell.stdout
        assert json.loads(order.stdout)["signature"] == signature(secret, "A-7")
        # What the sandbox saw: none of the worker's variables, by value or by name.
        for name in (UNRELATED_ENV, MODEL_KEY_ENV, TOKEN_ENV):
            assert name not in shell.stdout

        # The history, decoded and as the server sends it (payloads in base64).
        decoded = await history_text(handle)
        raw_history = (await handle.fetch_history()).to_json()
        assert visible in decoded and found(raw_history, visible)
        assert found(decoded, secret) == []
        assert found(raw_history, secret) == []
        read_back = json.dumps([s.model_dump(mode="json") for s in steps]) + result.model_dump_json()
        assert found(read_back, secret) == []
        # The tool output the model read, and everything else it was sent.
        seen_by_model = [m["content"] for m in tool_messages(model.requests[1].body)]
        assert len(seen_by_model) == 2 and "PATH=" in seen_by_model[0]
        for request in [*model.requests, *refusing.requests]:
            assert found(json.dumps(request.body), secret) == []
    finally:
        code = await worker.stop()  # flushes its spans to the trace file
        server.stop()  # the database file as the server leaves it
        left = worker.remove_sandboxes()
    assert code == 0, worker.log()[-4000:]
    assert not left, f"sandboxes left behind: {left}"

    # The dev server's database (its WAL and shared-memory files too, if any).
    database = {p: b for p, b in files_under(tmp_path).items() if p.name.startswith("t.db")}
    assert any(visible.encode() in blob for blob in database.values()), "the control is missing"
    for path, blob in database.items():
        assert found(blob, secret) == [], path
    # The trace file and the worker's log.
    traces = trace_file.read_bytes()
    assert handle.id.encode() in traces
    assert found(traces, secret) == []
    log = log_file.read_bytes()
    assert f"worker {worker.worker_id} serving".encode() in log
    assert found(log, secret) == []
    # The conversation store: every blob.
    store = files_under(data_dir / "store")
    assert any(visible.encode() in blob for blob in store.values()), "the control is missing"
    for path, blob in store.items():
        assert found(blob, secret) == [], path
    # And anything else the run left in the test's directory.
    for path, blob in files_under(tmp_path).items():
        assert found(blob, secret) == [], path
