"""Budget accounts through real workers: runs on one account share its ceiling, are charged
each call once (a crash in between included), are stopped by it naming it, and can't name
an account that does not exist.

The worker is a process of its own whose calls may answer with at most 40 tokens
(TETHER_MAX_OUTPUT_TOKENS): a first call reserves 40 and uses 100, so runs really do go past
what they reserved, and the bound under test (one call each) is what holds them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from tether import client as tether
from tether.contracts import AgentRunResult
from tether.contracts.accounts import AccountLimits, AccountState, account_workflow_id
from tether.contracts.names import AGENT_RUN, BUDGET_ACCOUNT
from tether.embedded import temporal as embedded
from tether.workflows.account import BudgetAccount
from tether.workflows.agent import AgentRun

from tests.helpers import free_port, tether_cli, wait_for
from tests.scripts import scripted_run
from tests.test_metrics import scrape, value
from tests.test_worker_versioning import build_ids_of, make_current
from tests.workflows.worker_process import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CALL_TOKENS = 100
LOOKUP = {"name": "lookup_order", "arguments": {"order_id": "A-1"}}


def turns(count: int, *, delay_at: int | None = None) -> list[dict[str, Any]]:
    """`count` turns of 100 tokens: a function tool call each (no sandbox), then an answer."""
    made: list[dict[str, Any]] = [
        {"tool_calls": [LOOKUP], "usage": {"input_tokens": 60, "output_tokens": 40}}
        for _ in range(count - 1)]
    made.append({"text": "done", "usage": {"input_tokens": 60, "output_tokens": 40}})
    if delay_at is not None:
        made[delay_at]["delay_seconds"] = 4
    return made


def on_account(name: str, script: list[dict[str, Any]], **budget: Any) -> dict[str, Any]:
    return scripted_run("look up order A-1", *script, tools=["lookup_order"],
                        budget={"account": name, **budget})


def fresh_name() -> str:
    return f"team-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def worker(temporal_client: Client, docker_engine, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    """The worker process; its metrics at `env["TETHER_METRICS_BIND"]`, its spans in
    `env["TETHER_TRACE_FILE"]`."""
    process = WorkerProcess(temporal_client, task_queue=f"accounts-{uuid.uuid4().hex[:8]}",
                            worker_id=f"accounts-{uuid.uuid4().hex[:8]}",
                            log_file=tmp_path / "worker.log",
                            env={"TETHER_MAX_OUTPUT_TOKENS": "40",
                                 "TETHER_METRICS_BIND": f"127.0.0.1:{free_port()}",
                                 "TETHER_TRACE_FILE": str(tmp_path / "traces.jsonl")})
    await process.start()
    yield process
    await process.stop()


async def start(client: Client, worker: WorkerProcess, run: dict[str, Any]) -> Any:
    return await tether.start_run(client, run, task_queue=worker.task_queue)


async def test_six_concurrent_runs_never_overspend_their_account_by_more_than_a_call_each(
        temporal_client: Client, worker: WorkerProcess):
    name, limit = fresh_name(), 1000
    await tether.set_account(temporal_client, name, max_tokens=limit, task_queue=worker.task_queue)
    handles = await asyncio.gather(*(start(temporal_client, worker, on_account(name, turns(6)))
                                     for _ in range(6)))
    results: list[AgentRunResult] = await asyncio.gather(*(h.result() for h in handles))
    account = await tether.account_status(temporal_client, name)
    charged = sum(r.usage.total_tokens for r in results)
    assert limit <= account.used.tokens <= limit + 6 * CALL_TOKENS
    assert account.used.tokens == charged  # every call charged, and once
    assert (account.reserved.tokens, account.reservations) == (0, 0)
    stopped = [r for r in results if r.status == "budget_exhausted"]
    assert stopped, "6 runs of 600 tokens each fit in 1000"
    assert all(r.stop_reason.startswith(f"account {name} is spent") for r in stopped)


async def test_a_run_its_account_refuses_ends_budget_exhausted_naming_the_account(
        temporal_client: Client, worker: WorkerProcess):
    name = fresh_name()
    await tether.set_account(temporal_client, name, max_tokens=150, task_queue=worker.task_queue)
    result = await (await start(temporal_client, worker, on_account(name, turns(4)))).result()
    assert (result.status, result.steps, result.usage.total_tokens) == ("budget_exhausted", 2, 200)
    assert result.stop_reason == f"account {name} is spent: 200 of 150 tokens used so far"


async def test_an_accounts_charges_and_refusals_are_metrics_and_its_name_is_on_the_run_span(
        temporal_client: Client, worker: WorkerProcess):
    name = fresh_name()
    await tether.set_account(temporal_client, name, max_tokens=150, task_queue=worker.task_queue)
    handle = await start(temporal_client, worker, on_account(name, turns(4)))
    await handle.result()
    bind = worker.env["TETHER_METRICS_BIND"]

    async def counted() -> bool:
        samples = scrape(bind)
        return (value(samples, "tether_account_tokens_total", account=name) == 200
                and value(samples, "tether_account_refusals_total", account=name) == 1
                and value(samples, "tether_budget_stops_total", limit="account") >= 1)

    await wait_for(counted, timeout=30, what="the account's metrics")
    await worker.stop()
    spans = [json.loads(line) for line in Path(worker.env["TETHER_TRACE_FILE"]).read_text().splitlines()]
    [run] = [s for s in spans if s["name"] == "invoke_agent tether"
             and s["attributes"].get("gen_ai.conversation.id") == handle.id]
    assert run["attributes"]["tether.budget.account"] == name


async def test_a_run_naming_no_account_is_refused_before_it_starts(
        temporal_client: Client, worker: WorkerProcess):
    with pytest.raises(tether.AccountNotFound, match="budget account 'nobody-here' does not exist: "
                       "create it with `tether account set nobody-here"):
        await start(temporal_client, worker, on_account("nobody-here", turns(1)))


async def test_a_run_started_around_the_client_with_no_account_fails_naming_it(
        temporal_client: Client, worker: WorkerProcess):
    handle = await temporal_client.start_workflow(
        AGENT_RUN, on_account("nobody-here", turns(1)), id=f"run-{uuid.uuid4().hex[:8]}",
        task_queue=worker.task_queue, result_type=AgentRunResult)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "budget account 'nobody-here' does not exist" in str(failed.value.cause)
    assert "tether account set nobody-here" in str(failed.value.cause)


async def test_a_worker_killed_mid_call_leaves_the_account_charged_once_for_each_call(
        temporal_client: Client, worker: WorkerProcess, tmp_path: Path):
    name = fresh_name()
    await tether.set_account(temporal_client, name, max_tokens=10_000, task_queue=worker.task_queue)
    handle = await start(temporal_client, worker, on_account(name, turns(3, delay_at=1)))

    async def second_call_running() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return any(p.activity_type.name == "model_call" and p.state == PendingActivityState.
                   PENDING_ACTIVITY_STATE_STARTED for p in pending) and (
            await tether.account_status(temporal_client, name)).calls == 1

    await wait_for(second_call_running, timeout=60, what="the second model call running")
    await worker.kill()
    successor = WorkerProcess(temporal_client, task_queue=worker.task_queue, worker_id=worker.worker_id,
                              log_file=tmp_path / "successor.log", env=worker.env)
    await successor.start()
    try:
        result = await handle.result()
        account = await tether.account_status(temporal_client, name)
    finally:
        await successor.stop()
    assert result.status == "completed"
    assert (account.used.tokens, account.calls) == (3 * CALL_TOKENS, 3)
    assert account.reservations == 0


async def test_an_account_continues_as_new_with_its_usage(
        temporal_client: Client, worker: WorkerProcess):
    name = fresh_name()
    limits = AccountLimits(name=name, max_tokens=10_000)
    account = await temporal_client.start_workflow(
        BUDGET_ACCOUNT, AccountState(limits=limits, updates_before_continuing=3),
        id=account_workflow_id(name), task_queue=worker.task_queue)
    first = account.result_run_id
    for _ in range(2):
        result = await (await start(temporal_client, worker, on_account(name, turns(2)))).result()
        assert result.status == "completed"
    shown = await tether.account_status(temporal_client, name)
    assert (shown.used.tokens, shown.calls) == (4 * CALL_TOKENS, 4)
    assert (await temporal_client.get_workflow_handle(account.id).describe()).run_id != first


async def test_account_set_and_show_print_the_limits_and_usage(
        temporal_address: str, temporal_client: Client, worker: WorkerProcess):
    name = fresh_name()
    code, out, err = await tether_cli(temporal_address, worker.task_queue, "account", "set", name,
                                      "--max-tokens", "5000", "--max-cost-usd", "2.5",
                                      "--period", "day", "--json")
    assert code == 0, err
    shown = json.loads(out)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    assert (shown["max_tokens"], shown["max_cost_usd"], shown["period"]) == (5000, 2.5, "day")
    assert datetime.fromisoformat(shown["period_end"]).date() == tomorrow
    await (await start(temporal_client, worker, on_account(name, turns(2)))).result()
    code, out, err = await tether_cli(temporal_address, worker.task_queue, "account", "show", name)
    assert code == 0, err
    assert f"account {name}" in out
    assert "5000" in out and "200" in out and "$2.5000" in out
    assert f"2 call(s) charged · 0 in flight · period ends {tomorrow:%Y-%m-%d} 00:00 UTC" in out
    code, out, _ = await tether_cli(temporal_address, worker.task_queue, "account", "show", name, "--json")
    assert json.loads(out)["used"]["tokens"] == 2 * CALL_TOKENS


async def test_account_show_of_an_unknown_account_says_how_to_make_one(
        temporal_address: str, worker: WorkerProcess):
    code, _, err = await tether_cli(temporal_address, worker.task_queue, "account", "show", "nobody-here")
    assert code == 2
    assert "budget account 'nobody-here' does not exist" in err
    assert "tether account set nobody-here" in err


async def test_an_account_and_a_run_charged_to_it_replay_from_their_histories(
        temporal_client: Client, worker: WorkerProcess):
    name = fresh_name()
    await tether.set_account(temporal_client, name, max_tokens=150, task_queue=worker.task_queue)
    run = await start(temporal_client, worker, on_account(name, turns(4)))
    await run.result()
    account = temporal_client.get_workflow_handle(account_workflow_id(name))
    replayer = Replayer(workflows=[AgentRun, BudgetAccount], data_converter=pydantic_data_converter)
    for handle in (run, account):
        replayed = await replayer.replay_workflow(await handle.fetch_history())
        assert replayed.replay_failure is None


async def test_an_account_keeps_its_usage_across_a_server_restart(docker_engine, tmp_path: Path):
    port, database = free_port(), tmp_path / "temporal.db"
    address, name, queue = f"127.0.0.1:{port}", fresh_name(), f"accounts-{uuid.uuid4().hex[:8]}"

    async def serving(log: str) -> tuple[Any, Client, WorkerProcess]:
        server = embedded.start(port=port, ui_port=None, db_file=database, wait_seconds=90)
        client = await tether.connect(address=address)
        process = WorkerProcess(client, task_queue=queue, worker_id=queue, log_file=tmp_path / log,
                                env={"TEMPORAL_ADDRESS": address})
        await process.start()
        return server, client, process

    async def stop(server: Any, process: WorkerProcess) -> None:
        await process.stop()
        server.terminate()
        await asyncio.to_thread(server.wait, 30)

    server, client, process = await serving("before.log")
    try:
        await tether.set_account(client, name, max_tokens=10_000, task_queue=queue)
        await (await tether.start_run(client, on_account(name, turns(2)), task_queue=queue)).result()
    finally:
        await stop(server, process)
    server, client, process = await serving("after.log")
    try:
        kept = await tether.account_status(client, name)
        await (await tether.start_run(client, on_account(name, turns(2)), task_queue=queue)).result()
        after = await tether.account_status(client, name)
    finally:
        await stop(server, process)
    assert (kept.used.tokens, kept.calls) == (2 * CALL_TOKENS, 2)
    assert (after.used.tokens, after.calls) == (4 * CALL_TOKENS, 4)


async def test_an_account_moves_to_the_current_version_before_the_old_ones_workers_go(
        temporal_client: Client, temporal_address: str, docker_engine, tmp_path: Path):
    deployment, queue = f"tether-{uuid.uuid4().hex[:6]}", f"versioned-{uuid.uuid4().hex[:6]}"
    name = fresh_name()

    def version(build_id: str) -> WorkerProcess:
        return WorkerProcess(temporal_client, task_queue=queue, worker_id=f"{queue}-{build_id}",
                             log_file=tmp_path / f"{build_id}.log",
                             env={"TETHER_DEPLOYMENT_NAME": deployment, "TETHER_BUILD_ID": build_id})

    async def charged_run() -> AgentRunResult:
        return await (await tether.start_run(temporal_client, on_account(name, turns(1)),
                                             task_queue=queue)).result()

    v1, v2 = version("v1"), version("v2")
    try:
        await v1.start()
        await make_current(temporal_address, deployment, "v1")
        await tether.set_account(temporal_client, name, max_tokens=10_000, task_queue=queue)
        await v2.start()
        await make_current(temporal_address, deployment, "v2")
        assert (await charged_run()).status == "completed"  # its updates prompt the move
        await v1.stop()
        result = await asyncio.wait_for(charged_run(), timeout=60)
        account = await tether.account_status(temporal_client, name)
    finally:
        await v1.stop()
        await v2.stop()
    assert result.status == "completed"
    assert (account.used.tokens, account.calls) == (2 * CALL_TOKENS, 2)
    assert await build_ids_of(temporal_client, account_workflow_id(name)) == {"v2"}


async def test_a_sub_agent_is_charged_to_its_parents_account_whatever_the_call_names(
        temporal_client: Client, worker: WorkerProcess):
    name = fresh_name()
    await tether.set_account(temporal_client, name, max_tokens=10_000, task_queue=worker.task_queue)
    usage = {"input_tokens": 60, "output_tokens": 40}
    child = {"name": "delegate", "arguments": {
        "task": "look it up", "budget": {"account": "someone-else"},
        "model": {"provider": "scripted", "script": {"turns": [{"text": "A-1 shipped", "usage": usage}]}}}}
    run = scripted_run("plan", {"tool_calls": [child], "usage": usage}, {"text": "done", "usage": usage},
                       tools=["lookup_order"], budget={"account": name},
                       agents={"max_depth": 1, "max_children": 1})
    result = await (await start(temporal_client, worker, run)).result()
    account = await tether.account_status(temporal_client, name)
    assert result.status == "completed", result.stop_reason
    assert (account.used.tokens, account.calls) == (3 * CALL_TOKENS, 3)
    assert result.usage.total_tokens == 3 * CALL_TOKENS  # the child's charged to its parent once


async def test_tether_run_naming_no_account_says_how_to_make_one(
        temporal_address: str, worker: WorkerProcess):
    code, out, err = await tether_cli(temporal_address, worker.task_queue, "run", "count",
                                      "--model", "scripted:examples/demo.json", "--account", "nobody-here")
    assert code == 2, out
    assert ("budget account 'nobody-here' does not exist: create it with "
            "`tether account set nobody-here") in err
    assert "Traceback" not in err
