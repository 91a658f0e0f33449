"""Everything one sandbox instance holds: identity, buckets, data, idempotency, randomness,
and the faults it injects (``importer.sandbox.faults``)."""

from __future__ import annotations

import asyncio
import random
import re
import secrets
from dataclasses import dataclass
from typing import Any

from importer.sandbox.bucket import TokenBucket
from importer.sandbox.config import USABLE_STATUSES, Account, SandboxConfig
from importer.sandbox.errors import ApiError, not_found
from importer.sandbox.faults import Faults, FaultSettings, Misbehaviour
from importer.sandbox.idempotency import IdempotencyStore
from importer.sandbox.ids import ulid
from importer.sandbox.store import Store

TOKEN_PREFIX = "kdv_live_"  # noqa: S105 (a key prefix, not a secret)
_AUTH_RE = re.compile(r"Bearer kdv_live_([A-Za-z0-9_-]{24})")
_ACCOUNT_ID_RE = re.compile(r"\d{6,20}")

#: Pseudo-status recorded (and used internally) for a write whose connection was dropped.
DROPPED = 0


@dataclass(frozen=True, slots=True)
class WritePlan:
    """Random decisions for one admitted write, drawn together so that a fixed seed gives the
    same outcomes for the same request order regardless of how latencies interleave.

    ``outcome`` is ``None`` (normal), ``"fault"`` (5xx ``status``, no effect) or
    ``"ambiguous"`` (takes effect, then ``status`` 502 or ``DROPPED``).
    """

    delay_s: float
    outcome: str | None
    status: int


def new_token() -> str:
    """A fresh, well-formed live key: ``kdv_live_`` + 24 URL-safe characters."""
    return TOKEN_PREFIX + secrets.token_urlsafe(18)


class SandboxState:
    """One organisation with its accounts, rate-limit buckets and stored data."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.organization_id = "org_" + secrets.token_hex(8)
        self.organization_name = "Sandbox Org " + secrets.token_hex(3)
        self.token = new_token()
        self.api_key_id = "key_" + ulid()
        self.write_bucket = TokenBucket(per_minute=config.write_per_minute)
        self.read_bucket = TokenBucket(per_minute=config.read_per_minute)
        self.store = Store()
        self.idempotency = IdempotencyStore()
        self.rng = random.Random(config.seed)
        self.faults = Faults(config.initial_faults)
        self.cursor_secret = secrets.token_bytes(16)
        self.accounts: dict[str, Account] = {
            a.phone_number_id: a for a in config.accounts if a.phone_number_id is not None
        }
        self.account_teams: dict[str, str | None] = {k: a.team_id for k, a in self.accounts.items()}
        self.account_id = next(
            a.phone_number_id
            for a in config.accounts
            if a.status == "connected" and a.phone_number_id is not None
        )
        lo, hi = config.latency_range
        self._latency = (lo / 1000.0, hi / 1000.0)

    @staticmethod
    def token_last4(authorization: str | None) -> str | None:
        """The last four characters of a valid bearer token, else ``None``.

        Every well-formed ``kdv_live_`` key belongs to the sandbox organisation, so tests and
        benchmarks can mint their own keys; other prefixes (``kdv_test_``, ``kc_live_``) fail.
        """
        if authorization is None:
            return None
        match = _AUTH_RE.fullmatch(authorization)
        return match.group(1)[-4:] if match else None

    def usable_account(self, phone_number_id: str) -> Account:
        """The account of a path segment: 404 when unknown, 422 when not connected."""
        account = (
            self.accounts.get(phone_number_id)
            if _ACCOUNT_ID_RE.fullmatch(phone_number_id)
            else None
        )
        if account is None:
            raise not_found(
                f"no account with phone_number_id {phone_number_id!r}", param="phone_number_id"
            )
        if account.status not in USABLE_STATUSES:
            raise ApiError(
                422,
                "invalid_request_error",
                "account_not_connected",
                f"account {phone_number_id} is {account.status}, not connected",
                param="phone_number_id",
            )
        return account

    def _draw_delay(self) -> float:
        lo, hi = self._latency
        if hi <= 0.0:
            return 0.0
        return lo if lo == hi else self.rng.uniform(lo, hi)

    async def read_delay(self) -> None:
        """Sleep the configured latency for a read."""
        delay = self._draw_delay()
        if delay > 0.0:
            await asyncio.sleep(delay)

    def plan_write(self, faults: FaultSettings) -> WritePlan:
        """Draw latency and fault outcome for one admitted write under ``faults``."""
        delay = self._draw_delay()
        if faults.fault_rate <= 0.0 and faults.ambiguous_rate <= 0.0:
            return WritePlan(delay, None, 0)
        roll = self.rng.random()
        if roll < faults.fault_rate:
            return WritePlan(delay, "fault", self.rng.choice((500, 502, 503)))
        if roll < faults.fault_rate + faults.ambiguous_rate:
            return WritePlan(delay, "ambiguous", self.rng.choice((502, DROPPED)))
        return WritePlan(delay, None, 0)

    def plan_create(self, faults: FaultSettings) -> Misbehaviour | None:
        """Draw whether an admitted contact create is answered by a misbehaving middlebox.

        No draw (so seeded sequences stay as they were) while all three rates are zero.
        """
        html, oversize = faults.html_rate, faults.oversize_rate
        total = html + oversize + faults.endless_rate
        if total <= 0.0:
            return None
        roll = self.rng.random()
        if roll < html:
            return "html"
        if roll < html + oversize:
            return "oversize"
        if roll < total:
            return "endless"
        return None

    def plan_wrong(self, faults: FaultSettings) -> bool:
        """Draw whether an admitted contact create or PATCH is answered with the wrong
        contact (no draw while the rate is zero)."""
        rate = faults.wrong_contact_rate
        return rate > 0.0 and self.rng.random() < rate

    def stats(self) -> dict[str, Any]:
        """A JSON-able snapshot for ``GET /_sandbox/state`` and out-of-process tests."""
        store = self.store
        statuses = store.status_counts()
        return {
            "organization": {"id": self.organization_id, "name": self.organization_name},
            "account_id": self.account_id,
            "contacts": store.contacts(),
            "creations_by_phone": store.creations_by_phone(),
            "status_counts": {str(k): v for k, v in sorted(statuses.items())},
            "requests": [
                {"method": m, "route": r, "count": n}
                for (m, r), n in sorted(store.route_counts().items())
            ],
            "rate_limited": statuses.get(429, 0),
            "idempotency_keys": len(self.idempotency),
            "faults": self.faults.current.as_json(),
            "injected": self.faults.injected(),
        }
