"""Configuration of the Kirim-compatible sandbox server.

The sandbox never listens on anything but a loopback address: it accepts any well-formed
``kdv_live_`` token, so exposing it on a network interface would be pointless at best.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from importer.sandbox.faults import DEFAULT_OVERSIZE_BYTES, FaultSettings

AccountStatus = Literal["connected", "disconnected", "degraded", "onboarding"]
DuplicatePolicy = Literal["create", "conflict"]

#: Statuses whose account accepts contact calls. ``degraded`` (quality problems on the
#: WhatsApp side) still works; the contract is silent, and refusing it would stop imports
#: for a condition that does not affect contact storage.
USABLE_STATUSES = frozenset({"connected", "degraded"})


@dataclass(frozen=True, slots=True)
class Account:
    """One WhatsApp account of the organisation, as listed by ``GET /v1/accounts``.

    ``team_id`` is sandbox-only: a label whose ``team_id`` is set applies only to contacts of
    accounts of that team (otherwise ``bulk_label`` counts them as ``skipped_team_mismatch``).
    """

    phone_number_id: str | None
    phone_number: str | None
    name: str
    status: AccountStatus
    team_id: str | None = None


DEFAULT_ACCOUNTS: tuple[Account, ...] = (
    Account("106540352242922", "+15550100001", "Sandbox Main", "connected"),
    Account("106540352242923", "+15550100002", "Sandbox Old Number", "disconnected"),
    Account(None, None, "Sandbox Onboarding", "onboarding"),
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback IPv4/IPv6 literal."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_latency(text: str) -> tuple[float, float]:
    """Parse ``"50"`` (fixed) or ``"50-150"`` (uniform range) milliseconds."""
    lo_text, sep, hi_text = text.strip().partition("-")
    try:
        lo = float(lo_text)
        hi = float(hi_text) if sep else lo
    except ValueError:
        raise ValueError(f"latency must look like '50' or '50-150', got {text!r}") from None
    if lo < 0 or hi < lo:
        raise ValueError(f"latency range must satisfy 0 <= low <= high, got {text!r}")
    return (lo, hi)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Everything that shapes the sandbox's behaviour; frozen so a running server cannot drift.

    ``latency_ms`` is a fixed delay (a number, or ``(x, x)``) or a uniform range ``(lo, hi)``.
    ``fault_rate`` is the share of admitted writes answered 500/502/503 without any effect;
    ``ambiguous_rate`` the share that take effect and then answer 502 or lose the connection.
    ``seed`` drives latency and fault draws only; identifiers, the organisation and the token
    are always fresh (``secrets``) so every start is a new organisation.

    The fault fields, from ``fault_rate`` to ``accounts_body``, are only the *initial*
    ``FaultSettings`` (``initial_faults``): a running sandbox can change them (see
    ``importer.sandbox.faults``), and this frozen config keeps the values it started with.
    ``html_rate``, ``oversize_rate`` and ``endless_rate`` are shares of admitted contact
    creates answered 200 with an HTML block page, a JSON-looking body of ``oversize_bytes``,
    or a body that never ends; ``retry_after_s`` makes every write a 429 with that
    ``Retry-After``; ``error_message`` makes every create a 400 carrying that message;
    ``me_body`` / ``accounts_body`` replace the documents of ``/v1/me`` / ``/v1/accounts``.
    ``label_page_size`` is how many labels a page of ``GET /v1/labels`` holds when the
    request names no ``limit`` (the contacts list's default, 25, unless a test wants pages).
    """

    host: str = "127.0.0.1"
    port: int = 0
    write_per_minute: int = 600
    read_per_minute: int = 6000
    latency_ms: tuple[float, float] | float = (0.0, 0.0)
    fault_rate: float = 0.0
    ambiguous_rate: float = 0.0
    on_duplicate_phone: DuplicatePolicy = "create"
    seed: int | None = None
    idempotency_wait_s: float = 30.0
    label_page_size: int = 25
    accounts: tuple[Account, ...] = field(default=DEFAULT_ACCOUNTS)
    html_rate: float = 0.0
    oversize_rate: float = 0.0
    oversize_bytes: int = DEFAULT_OVERSIZE_BYTES
    endless_rate: float = 0.0
    retry_after_s: float | None = None
    error_message: str | None = None
    me_body: Any = None
    accounts_body: Any = None

    def __post_init__(self) -> None:
        if not is_loopback(self.host):
            raise ValueError(
                f"the sandbox only binds to loopback addresses (127.0.0.1, ::1, localhost); "
                f"refusing host {self.host!r}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.write_per_minute < 1 or self.read_per_minute < 1:
            raise ValueError("rate limits must be at least 1 request per minute")
        self.initial_faults  # noqa: B018 (validates the fault fields)
        if self.on_duplicate_phone not in ("create", "conflict"):
            raise ValueError("on_duplicate_phone must be 'create' or 'conflict'")
        if not 1 <= self.label_page_size <= 100:
            raise ValueError("label_page_size must be 1..100")
        if self.idempotency_wait_s < 0:
            raise ValueError("idempotency_wait_s must be >= 0")
        lo, hi = self.latency_range
        if lo < 0 or hi < lo:
            raise ValueError(f"latency_ms must satisfy 0 <= low <= high, got {self.latency_ms}")
        if not any(a.status == "connected" and a.phone_number_id for a in self.accounts):
            raise ValueError("at least one connected account with a phone_number_id is needed")

    @property
    def initial_faults(self) -> FaultSettings:
        """The fault fields as the ``FaultSettings`` a new server starts with."""
        return FaultSettings(
            fault_rate=self.fault_rate,
            ambiguous_rate=self.ambiguous_rate,
            html_rate=self.html_rate,
            oversize_rate=self.oversize_rate,
            oversize_bytes=self.oversize_bytes,
            endless_rate=self.endless_rate,
            retry_after_s=self.retry_after_s,
            error_message=self.error_message,
            me_body=self.me_body,
            accounts_body=self.accounts_body,
        )

    @property
    def latency_range(self) -> tuple[float, float]:
        """``latency_ms`` as a ``(low, high)`` pair in milliseconds."""
        if isinstance(self.latency_ms, tuple):
            return (float(self.latency_ms[0]), float(self.latency_ms[1]))
        return (float(self.latency_ms), float(self.latency_ms))

    @property
    def tier(self) -> str:
        """Plan name reported by ``/v1/me``: free (60 writes/min), pro (600), else enterprise."""
        if self.write_per_minute == 60:
            return "free"
        if self.write_per_minute == 600:
            return "pro"
        return "enterprise"
