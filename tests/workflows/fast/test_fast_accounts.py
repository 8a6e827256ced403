"""A run's budget account, fast: the real `BudgetAccount` workflow and account activities on
the stand-ins' worker, the model a stand-in. No Docker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from tether.activities.accounts import AccountActivities
from tether.client import account_status, cancel, set_account
from tether.contracts import ToolCallInput, ToolCallOutput
from tether.contracts.accounts import ACCOUNT_BUSY, RESERVE_ACCOUNT, AccountReserveInput, Reserved
from tether.contracts.activities import TOOL_CALL
from tether.llm.endpoints import ModelEndpoints
from tether.workflows.account import BudgetAccount
from tether.workflows.agent import AgentRun

from tests.workflows.fast.standins import HEARTBEAT_EVERY, StandIns, eventually, start, turn


class CountedAccounts(AccountActivities):
    """The real account activities, counting the busy answers the account gave."""

    busy = 0

    @activity.defn(name=RESERVE_ACCOUNT)
    async def reserve(self, input: AccountReserveInput) -> Reserved:
        try:
            return await super().reserve(input)
        except ApplicationError as error:
            if error.type == ACCOUNT_BUSY:
                self.busy += 1
            raise


@contextlib.asynccontextmanager
async def serving(client: Client, fakes: StandIns,
                  accounts: AccountActivities | None = None) -> AsyncIterator[None]:
    accounts = accounts or AccountActivities(endpoints=ModelEndpoints(), max_output_tokens=50)
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


class TimedTools(StandIns):
    """Stand-ins whose every tool call took 1.5 s in its sandbox."""

    @activity.defn(name=TOOL_CALL)
    async def tool_call(self, input: ToolCallInput) -> ToolCallOutput:
        output = await super().tool_call(input)
        return output.model_copy(update={"result": output.result.model_copy(update={"duration_ms": 1500})})


async def test_the_sandbox_seconds_of_a_steps_tools_are_charged_with_the_next_call(fast_client: Client):
    fakes = TimedTools(turn("working", shell=["make", "make test"], tokens=10), turn("done", tokens=10))
    name = f"{fakes.task_queue}-a"
    async with serving(fast_client, fakes):
        await set_account(fast_client, name, task_queue=fakes.task_queue)
        result = await (await start(fast_client, fakes, budget={"account": name})).result()
        account = await account_status(fast_client, name)

    assert result.status == "completed"
    assert (account.used.tokens, account.sandbox_seconds, account.calls) == (20, 3.0, 2)


async def test_the_sandbox_seconds_of_a_runs_last_tools_are_charged_when_it_ends(fast_client: Client):
    # The run stops at its step limit right after its tools: no model call follows to
    # carry their seconds, so the run's end charges them, as a charge and not a call.
    fakes = TimedTools(turn("working", shell=["make", "make test"], tokens=10),
                       turn("working", shell="make install", tokens=10))
    name = f"{fakes.task_queue}-a"
    async with serving(fast_client, fakes):
        await set_account(fast_client, name, task_queue=fakes.task_queue)
        result = await (await start(fast_client, fakes, budget={"account": name, "max_steps": 2})).result()
        account = await account_status(fast_client, name)

    assert (result.status, result.steps) == ("budget_exhausted", 2)
    assert (account.used.tokens, account.sandbox_seconds, account.calls) == (20, 4.5, 2)


async def test_a_turn_no_model_answered_gives_its_reservation_back(fast_client: Client):
    fakes = StandIns(turn("working", shell="make", tokens=10), hold_models=True)
    name = f"{fakes.task_queue}-a"
    async with serving(fast_client, fakes):
        await set_account(fast_client, name, max_tokens=1000, task_queue=fakes.task_queue)
        handle = await start(fast_client, fakes, budget={"account": name})
        await eventually(lambda: held(fast_client, name, 1), "the first call's reservation")
        await cancel(fast_client, handle.id, "enough")
        result = await handle.result()
        account = await account_status(fast_client, name)

    assert result.status == "cancelled"
    assert (account.used.tokens, account.reserved.tokens, account.reservations) == (0, 0, 0)


async def test_a_call_waits_while_calls_in_flight_hold_all_the_account_has_left(fast_client: Client):
    fakes = StandIns(turn("done", tokens=30), hold_models=True)
    accounts = CountedAccounts(endpoints=ModelEndpoints(), max_output_tokens=50)
    name = f"{fakes.task_queue}-a"
    async with serving(fast_client, fakes, accounts):
        await set_account(fast_client, name, max_tokens=50, task_queue=fakes.task_queue)
        first = await start(fast_client, fakes, budget={"account": name})
        await eventually(lambda: held(fast_client, name, 1), "the first run's reservation")
        second = await start(fast_client, fakes, budget={"account": name})
        await eventually(lambda: asked_twice(accounts), "the second run told the account is busy, twice")
        assert len(fakes.model_calls) == 1
        fakes.let_models_finish()
        results = [await first.result(), await second.result()]
        account = await account_status(fast_client, name)

    assert [r.status for r in results] == ["completed", "completed"]
    assert (account.used.tokens, account.calls, account.reservations) == (60, 2, 0)


async def held(client: Client, name: str, reservations: int) -> bool:
    return (await account_status(client, name)).reservations == reservations


async def asked_twice(accounts: CountedAccounts) -> bool:
    return accounts.busy >= 2
