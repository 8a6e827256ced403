"""`tether account set|show`: budget accounts, ceilings that every run naming one shares
(`budget.account`). Each command is one client call."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from tether import client
from tether.cli.app import app
from tether.cli.calls import call, connect
from tether.cli.context import given
from tether.cli.errors import cause, fail
from tether.cli.render import console, literal
from tether.contracts.accounts import AccountLimits, AccountView

account_app = typer.Typer(help="Budget accounts: limits shared by every run that names one.",
                          no_args_is_help=True)
app.add_typer(account_app, name="account")

Name = Annotated[str, typer.Argument(
    metavar="NAME", help="The account's name, as runs give it in budget.account.")]
OPTIONS = {"name": "NAME", "max_tokens": "--max-tokens", "max_cost_usd": "--max-cost-usd",
           "period": "--period"}
"""What a person typed, by the field it sets: what an error names."""
SET_HINT = "tether account set NAME --max-tokens N --max-cost-usd D [--period day]"


@account_app.command("set")
def account_set(
    name: Name,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-tokens", min=1, help="Tokens, input and output, per period (none: unlimited).")] = None,
    max_cost_usd: Annotated[float | None, typer.Option(
        "--max-cost-usd", help="Dollars per period (none: unlimited).")] = None,
    period: Annotated[str | None, typer.Option(
        "--period", metavar="day",
        help="day: usage starts again at each midnight UTC; none: it never does.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the account as JSON.")] = False,
) -> None:
    """Create a budget account, or replace its limits (keeping what it has used). Runs
    charge it with `"budget": {"account": NAME}` (`tether run --account NAME`)."""
    try:
        limits = AccountLimits.model_validate(given(
            name=name, max_tokens=max_tokens, max_cost_usd=max_cost_usd, period=period))
    except ValidationError as error:
        fail("; ".join(f"{OPTIONS.get(str(e['loc'][0]), 'input')}: {e['msg']}"
                       for e in error.errors()), SET_HINT)

    async def go() -> AccountView:
        return await client.set_account(
            await connect(), name, max_tokens=limits.max_tokens,
            max_cost_usd=limits.max_cost_usd, period=limits.period)

    shown = call(go, lambda error: (f"cannot set account {name}: {cause(error)}", SET_HINT))
    _print(shown, as_json)


@account_app.command("show")
def account_show(
    name: Name,
    as_json: Annotated[bool, typer.Option("--json", help="Print the account as JSON.")] = False,
) -> None:
    """An account's limits, what its period has used, what calls in flight hold, and when
    the period ends."""
    async def go() -> AccountView:
        return await client.account_status(await connect(), name)

    def explain(error: Exception) -> tuple[str, str | None]:
        if isinstance(error, client.AccountNotFound):
            return str(error), None
        return f"cannot read account {name}: {cause(error)}", "check the name: " + SET_HINT

    _print(call(go, explain), as_json)


def _print(account: AccountView, as_json: bool) -> None:
    if as_json:
        print(json.dumps(account.model_dump(mode="json")))
        return
    table = Table(title=literal(f"account {account.name}"))
    for column in ("", "limit", "used", "reserved"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("tokens", _limit(account.max_tokens), str(account.used.tokens),
                  str(account.reserved.tokens))
    table.add_row("dollars", _limit(account.max_cost_usd, "${:.4f}"),
                  f"${account.used.cost_usd:.4f}", f"${account.reserved.cost_usd:.4f}")
    table.add_row("sandbox seconds", "-", f"{account.sandbox_seconds:.1f}", "-")
    console.print(table)
    ends = (f"period ends {account.period_end:%Y-%m-%d %H:%M} UTC" if account.period_end
            else "no period: usage never resets")
    console.print(literal(f"{account.calls} call(s) charged · {account.reservations} in flight · {ends}"))


def _limit(value: float | None, form: str = "{}") -> str:
    return "unlimited" if value is None else form.format(value)
