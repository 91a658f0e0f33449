"""Before the first write: check the key (``GET /v1/me``) and the account (``GET /v1/accounts``).

``/v1/me`` gives the organisation the journal is keyed by and the write and read budgets;
``/v1/accounts`` says which WhatsApp account (``phone_number_id``) the contacts go to: one for
the run, or (a file with an account column, ``several=True``) the list the rows are routed
against (``validate.accounts``), with the default for empty cells. Both go
through the run's ``Sender`` (the same retry policy as every request, no bucket yet). An answer
without the documented shape is a ``StopRun`` that names the field: nothing has been written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from importer.errors import StopRun
from importer.records import ACCOUNT_ID, Account
from importer.send.client import KirimClient, Reply, Verdict
from importer.send.retry import Sender


@dataclass(frozen=True, slots=True)
class Preflight:
    org: str  # the organisation's id: the journal's key
    account: str  # the phone_number_id contacts are created under
    write_per_minute: float | None  # the budgets /v1/me reports, when it does
    read_per_minute: float | None
    # what GET /v1/accounts listed (a file with an account column routes its rows to them;
    # ``account`` is then the default for empty cells, "" when there is none)
    accounts: tuple[Account, ...] = ()


def _refused(call: str, reply: Reply) -> StopRun:
    hint = " (check KIRIM_API_KEY and the base URL)" if call == "GET /v1/me" else ""
    return StopRun(
        f"{call} failed: {reply.status or 'no answer'} {reply.error_code}: "
        f"{reply.error_message}{hint}"
    )


def _malformed(call: str, field: str, value: Any, wanted: str) -> StopRun:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return StopRun(
        f"{call} answered a body this importer cannot use: {field} is {shown}, expected "
        f"{wanted}. Nothing was sent."
    )


def _rate(limits: dict[str, Any], name: str) -> float | None:
    value = limits.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _malformed("GET /v1/me", f"data.rate_limits.{name}", value, "a positive number")
    return float(value)


def read_me(data: Any) -> tuple[str, float | None, float | None]:
    """(organisation id, writes/min, reads/min) from ``/v1/me``'s ``data``."""
    org = data.get("organization") if isinstance(data, dict) else None
    org_id = org.get("id") if isinstance(org, dict) else None
    if isinstance(org_id, bool) or not isinstance(org_id, str | int) or org_id == "":
        field = "data.organization.id" if isinstance(org, dict) else "data.organization"
        value = org_id if isinstance(org, dict) else org
        raise _malformed("GET /v1/me", field, value, "an organisation with an id")
    limits = data.get("rate_limits")
    if limits is None:
        limits = {}
    if not isinstance(limits, dict):
        raise _malformed("GET /v1/me", "data.rate_limits", limits, "an object")
    return str(org_id), _rate(limits, "write_per_minute"), _rate(limits, "read_per_minute")


def read_accounts(data: Any) -> tuple[Account, ...]:
    """``/v1/accounts``' list, each row checked as ``choose_account`` checks it."""
    if not isinstance(data, list):
        raise _malformed("GET /v1/accounts", "data", data, "a list of accounts")
    return tuple(
        Account(
            str(row["phone_number_id"]) if row.get("phone_number_id") is not None else None,
            _text(row.get("phone_number")), _text(row.get("name")), _text(row.get("status")),
        )
        for row in _checked_rows(data)
    )  # fmt: skip


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _checked_rows(data: list[Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise _malformed("GET /v1/accounts", f"data[{i}]", row, "an account object")
        pid = row.get("phone_number_id")
        if pid is not None and not (isinstance(pid, str) and ACCOUNT_ID.fullmatch(pid)):
            raise _malformed(
                "GET /v1/accounts", f"data[{i}].phone_number_id", pid, "6 to 20 digits or null"
            )
        rows.append(row)
    return rows


def choose_account(data: list[Any], wanted: str | None, *, several: bool = False) -> str:
    """The account to import into: ``wanted``, or the only connected one. ``several`` (a
    file with an account column): the default for empty cells, "" when no account is the
    only connected one (those rows are then ``missing_account``, not a stop)."""
    rows = _checked_rows(data)
    listing = "; ".join(
        f"{a.get('phone_number_id')} {a.get('phone_number')} ({a.get('status')})" for a in rows
    )
    if wanted is None:
        connected = [a for a in rows if a.get("status") == "connected" and a["phone_number_id"]]
        if len(connected) != 1 and several:
            return ""
        if len(connected) != 1:
            raise StopRun(
                f"{len(connected)} connected accounts: choose one with --account. "
                f"Accounts: {listing or 'none'}"
            )
        return str(connected[0]["phone_number_id"])
    match = [a for a in rows if a.get("phone_number_id") == wanted]
    if not match:
        raise StopRun(f"account {wanted} not found. Accounts: {listing or 'none'}")
    if match[0].get("status") not in ("connected", "degraded"):  # degraded still takes contacts
        raise StopRun(f"account {wanted} is {match[0].get('status')}, not connected")
    return wanted


async def preflight(
    *, client: KirimClient, sender: Sender, account: str | None, several: bool = False
) -> Preflight:
    """Check the key and the account; raises ``StopRun`` before anything is written.
    ``several``: the file has an account column (see ``choose_account``)."""
    me, _ = await sender.call(None, client.me)
    if me.verdict is not Verdict.OK:
        raise _refused("GET /v1/me", me)
    org, write_pm, read_pm = read_me(me.data)
    accounts, _ = await sender.call(None, client.accounts)
    if accounts.verdict is not Verdict.OK:
        raise _refused("GET /v1/accounts", accounts)
    chosen = choose_account(accounts.data, account, several=several)
    listed = read_accounts(accounts.data) if several else ()
    return Preflight(org, chosen, write_pm, read_pm, listed)


async def list_accounts(*, client: KirimClient, sender: Sender) -> tuple[Account, ...]:
    """``GET /v1/accounts`` alone (a plan checking a file's account column); ``StopRun``
    when it is refused or unusable."""
    accounts, _ = await sender.call(None, client.accounts)
    if accounts.verdict is not Verdict.OK:
        raise _refused("GET /v1/accounts", accounts)
    return read_accounts(accounts.data)
