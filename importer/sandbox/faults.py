"""The faults a running sandbox injects, and how many it injected; adjustable while it serves.

``SandboxConfig`` is frozen: its fault fields only give the *initial* ``FaultSettings``. The
server keeps the current settings in a ``Faults`` holder and reads them once per request, so a
request sees one consistent set even when a test changes them while it is in flight. Settings
are themselves frozen; a change builds (and validates) a new snapshot and swaps it in. Changes
come from ``Sandbox.set_faults`` (applied on the server's loop) or ``POST /_sandbox/faults``.

Kinds, each counted per injection under its name (see ``KINDS``):

* ``fault`` / ``ambiguous``: a write answers 500/502/503 with no effect, or takes effect and
  then answers 502 or loses the connection (``fault_rate``, ``ambiguous_rate``; one roll).
* ``retry_after``: with ``retry_after_s`` set, every write answers 429 ``rate_limit_exceeded``
  with that ``Retry-After`` (no token charged, no effect).
* ``error_message``: with ``error_message`` set, every contact create answers 400
  ``invalid_field_value`` carrying that message (no effect, the key is not stored).
* ``html`` / ``oversize`` / ``endless``: a contact create answers 200 with a gateway's HTML
  block page, a JSON-looking body of ``oversize_bytes``, or a body that never ends (no effect,
  the key is not claimed). ``html_rate``, ``oversize_rate``, ``endless_rate`` share one roll.
* ``label_status``: with it set (a 4xx or 5xx), every ``bulk_label`` answers that status with
  an ``api_error`` body and no effect.
* ``wrong_contact``: a contact create or PATCH answered 2xx with a contact that is not the one
  asked for, and no effect (``wrong_contact_rate``; ``wrong_contact`` says which: ``"other"``,
  another contact of the account when it has one, or ``"madeup"``, a contact that does not
  exist). The key is not claimed; with ``wrong_contact_effect`` the write takes effect first
  (and its key keeps the true answer), and that answer is then swapped for the wrong one.
* ``replay_conflict``: with it set (``"idempotency_key_reuse"`` or ``"idempotency_conflict"``),
  a request whose key already has a stored answer is refused with that code (422 or 409)
  instead of the replay: what the contract's two pages say Kirim may answer.
* ``echo_header``: with it set (a request header's name), every API answer carries that
  request header's value as its request id, in ``X-Request-Id`` and the body's
  ``request_id`` (a server that echoes the ``Authorization`` key back, say).
* ``me_body`` / ``accounts_body``: ``GET /v1/me`` / ``GET /v1/accounts`` answer 200 with
  exactly that JSON (``None`` serves the real document, so JSON ``null`` cannot be served).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

#: A contact create answered with something that is not an API response at all.
Misbehaviour = Literal["html", "oversize", "endless"]

#: Every counted kind, in the order ``injected()`` reports them.
KINDS = (
    "fault",
    "ambiguous",
    "retry_after",
    "error_message",
    "label_status",
    "wrong_contact",
    "replay_conflict",
    "echo_header",
    "html",
    "oversize",
    "endless",
    "me_body",
    "accounts_body",
)

DEFAULT_OVERSIZE_BYTES = 5 * 1024 * 1024
#: Room for the JSON frame around the padding (``{"data":{"padding":"..."}}``).
MIN_OVERSIZE_BYTES = 64
MAX_ERROR_MESSAGE = 10_000

_BODIES = ("me_body", "accounts_body")
_RATES = (
    "fault_rate", "ambiguous_rate", "html_rate", "oversize_rate", "endless_rate",
    "wrong_contact_rate",
)  # fmt: skip
WRONG_CONTACTS = ("other", "madeup")
REPLAY_CONFLICTS = {"idempotency_key_reuse": 422, "idempotency_conflict": 409}
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    """``value`` as a finite float, else ``None`` (``bool``, strings, inf, nan, huge ints)."""
    if not _is_number(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _json_bytes(name: str, value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; ``ValueError`` when it is not JSON-able."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be JSON-serialisable, got {type(value).__name__}") from None
    return text.encode("utf-8")


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """One validated snapshot of every runtime-adjustable fault (see the module docstring).

    Values may come from JSON, so types are checked too: rates are numbers in 0..1 (``bool``
    is refused), ``oversize_bytes`` an int of at least ``MIN_OVERSIZE_BYTES``, ``retry_after_s``
    a finite number >= 0 or ``None``, ``error_message`` a non-empty string or ``None``,
    ``echo_header`` a header's name or ``None``.
    """

    fault_rate: float = 0.0
    ambiguous_rate: float = 0.0
    html_rate: float = 0.0
    oversize_rate: float = 0.0
    oversize_bytes: int = DEFAULT_OVERSIZE_BYTES
    endless_rate: float = 0.0
    retry_after_s: float | None = None
    error_message: str | None = None
    label_status: int | None = None
    wrong_contact_rate: float = 0.0
    wrong_contact: str = "other"
    wrong_contact_effect: bool = False
    replay_conflict: str | None = None
    echo_header: str | None = None
    me_body: Any = None
    accounts_body: Any = None
    _bodies: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.fault_rate + self.ambiguous_rate > 1.0:
            raise ValueError("fault_rate + ambiguous_rate must not exceed 1")
        if self.html_rate + self.oversize_rate + self.endless_rate > 1.0:
            raise ValueError("html_rate + oversize_rate + endless_rate must not exceed 1")
        size = self.oversize_bytes
        if not isinstance(size, int) or isinstance(size, bool) or size < MIN_OVERSIZE_BYTES:
            raise ValueError(f"oversize_bytes must be an int >= {MIN_OVERSIZE_BYTES}, got {size!r}")
        wait = self.retry_after_s
        if wait is not None:
            seconds = _finite(wait)
            if seconds is None or seconds < 0:
                raise ValueError(f"retry_after_s must be a finite number >= 0, got {wait!r}")
            object.__setattr__(self, "retry_after_s", seconds)
        message = self.error_message
        if message is not None and (
            not isinstance(message, str) or not 1 <= len(message) <= MAX_ERROR_MESSAGE
        ):
            raise ValueError(
                f"error_message must be a string of 1 to {MAX_ERROR_MESSAGE} characters"
            )
        code = self.label_status
        if code is not None and (
            not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599
        ):
            raise ValueError(f"label_status must be an HTTP status 400..599, got {code!r}")
        if not isinstance(self.wrong_contact_effect, bool):
            raise ValueError("wrong_contact_effect must be true or false")
        if self.wrong_contact not in WRONG_CONTACTS:
            raise ValueError(f"wrong_contact must be one of {list(WRONG_CONTACTS)}")
        if self.replay_conflict is not None and self.replay_conflict not in REPLAY_CONFLICTS:
            raise ValueError(f"replay_conflict must be None or one of {list(REPLAY_CONFLICTS)}")
        echo = self.echo_header
        if echo is not None and (not isinstance(echo, str) or not _HEADER_NAME.fullmatch(echo)):
            raise ValueError(f"echo_header must be an HTTP header's name, got {echo!r}")
        bodies = {}
        for name in _BODIES:
            value = getattr(self, name)
            if value is not None:
                bodies[name] = _json_bytes(name, value)
                object.__setattr__(self, name, json.loads(bodies[name]))
        object.__setattr__(self, "_bodies", bodies)

    @property
    def retry_after_header(self) -> str | None:
        """``retry_after_s`` as the integer ``Retry-After`` value (rounded up), if set."""
        return None if self.retry_after_s is None else str(math.ceil(self.retry_after_s))

    def body(self, name: str) -> bytes | None:
        """The JSON bytes to serve for ``me_body`` or ``accounts_body``, if set.

        Serialised once, when the settings were made: mutating the object given (or the
        attribute read back) changes nothing that is served.
        """
        return self._bodies.get(name)

    def replace(self, **changes: Any) -> FaultSettings:
        """A validated copy with ``changes``; unknown names raise ``ValueError``."""
        known = _names()
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; known: {list(known)}")
        return dataclasses.replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        """Every setting by name, as served by ``/_sandbox/faults`` (bodies are fresh copies)."""
        out = {name: getattr(self, name) for name in _names()}
        for name in _BODIES:
            raw = self._bodies.get(name)
            out[name] = None if raw is None else json.loads(raw)
        return out


def _names() -> tuple[str, ...]:
    """The settable names of ``FaultSettings``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(FaultSettings) if f.init)


class Faults:
    """The current ``FaultSettings`` of a running sandbox plus per-kind injection counts.

    Settings change only on the server's loop (``update``); reading ``current`` from any
    thread is safe (one reference). Counts are incremented on the loop and read from test
    threads, hence the lock.
    """

    def __init__(self, settings: FaultSettings) -> None:
        self._settings = settings
        self._injected: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def current(self) -> FaultSettings:
        """The settings in force now."""
        return self._settings

    def update(self, **changes: Any) -> FaultSettings:
        """Apply ``changes`` (validated as a whole; nothing changes on error); returns the
        new settings. Call on the server's loop."""
        self._settings = self._settings.replace(**changes)
        return self._settings

    def count(self, kind: str) -> None:
        """Record one injected fault of ``kind`` (one of ``KINDS``)."""
        with self._lock:
            self._injected[kind] += 1

    def injected(self) -> dict[str, int]:
        """Kind -> number injected so far (every kind present, zero included)."""
        with self._lock:
            return {kind: self._injected[kind] for kind in KINDS}
