"""A plan's look at the organisation's accounts: a file with an account column is routed
against ``GET /v1/accounts`` when a key is set (``KIRIM_API_KEY``, or the API's ``api_key=``),
so a plan finds the rows a run would refuse (``unknown_account``, ``account_not_connected``).
Without a key, or when the request fails, nothing is checked and the plan says why: rows are
then told apart by their account cell as written (``validate.accounts``).

One read-only request with a short retry policy, on an event loop of its own in a thread of
its own: ``plan`` is a plain function a host may call from anywhere, its own loop included.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from importer.errors import StopRun
from importer.records import Account
from importer.redact import redact
from importer.send.client import KirimClient
from importer.send.preflight import list_accounts
from importer.send.retry import RetryPolicy, Sender
from importer.send.stop import Stop

PLAN_POLICY = RetryPolicy(max_attempts=3, max_wait_s=30.0)  # a plan does not wait for long
PLAN_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class Listing:
    """What a plan learnt of the accounts: the list (None: not checked) and a line saying so."""

    accounts: tuple[Account, ...] | None
    said: str


def plan_listing(*, base_url: str | None, api_key: str) -> Listing:
    """Kirim's list of accounts when a key is set; otherwise, or when it cannot be had, why
    not. Never raises for the server's sake: a plan goes on unchecked."""
    if not api_key or not base_url:
        return Listing(
            None,
            "accounts not checked: no KIRIM_API_KEY (nor the variable a config file's "
            "api_key_env names) set (a run checks them; here rows are told apart by the "
            "account cell as written)",
        )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan-accounts") as pool:
        try:
            accounts = pool.submit(asyncio.run, _fetch(base_url, api_key)).result()
        except StopRun as exc:
            return Listing(None, f"accounts not checked: {redact(str(exc))}")
    usable = sum(1 for a in accounts if a.usable)
    return Listing(
        accounts,
        f"accounts checked against GET /v1/accounts: {len(accounts)} listed, {usable} connected",
    )


async def _fetch(base_url: str, api_key: str) -> tuple[Account, ...]:
    sender = Sender(stop=Stop(), policy=PLAN_POLICY)
    async with KirimClient(
        base_url=base_url, api_key=api_key, timeout_s=PLAN_TIMEOUT_S, max_connections=1
    ) as client:
        return await list_accounts(client=client, sender=sender)
