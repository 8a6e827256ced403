"""A run's budget account, fast: the real `BudgetAccount` workflow and account activities on
the stand-ins' worker, the model a stand-in. No Docker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from temporalio.client import Client
from temporalio.worker import Worker
from tether.activities.accounts import AccountActivities
from tether.client import account_status, set_account
from tether.llm.endpoints import ModelEndpoints
from tether.workflows.account import BudgetAccount
from tether.workflows.agent import AgentRun

from tests.workflows.fast.standins import HEARTBEAT_EVERY, StandIns, start, turn


@contextlib.asynccontextmanager
async def serving(client: Client, fakes: StandIns) -> AsyncIterator[None]:
    accounts = AccountActivities(endpoints=ModelEndpoints(), max_output_tokens=50)
    async with Worker(
        client, task_queue=fakes.task_queue, workflows=[AgentRun, BudgetAccount],
        activities=[*fakes.activities(), accounts.reserve, accounts.commit, accounts.release],
        max_heartbeat_throttle_interval=HEARTBEAT_EVERY,
        default_heartbeat_throttle_interval=HEARTBEAT_EVERY,
    ):
        yield


async def test_a_run_its_account_refuses_stops_naming_the_account(fast_client: Client):
    fakes = StandIns(turn("working", shell="make", tokens=100))
    async with serving(fast_client, fakes):
        await set_account(fast_client, f"{fakes.task_queue}-a", max_tokens=150,
                          task_queue=fakes.task_queue)
        handle = await start(fast_client, fakes, budget={"account": f"{fakes.task_queue}-a"})
        result = await handle.result()
        account = await account_status(fast_client, f"{fakes.task_queue}-a")

    assert (result.status, result.steps) == ("budget_exhausted", 2)
    assert result.stop_reason == (f"account {fakes.task_queue}-a is spent: "
                                  "200 of 150 tokens used so far")
    assert [call.step for call in fakes.model_calls] == [1, 2]
    assert (account.used.tokens, account.calls, account.reservations) == (200, 2, 0)
