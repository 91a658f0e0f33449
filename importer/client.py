"""Talking to Kirim: one HTTP call in, one ``Reply`` value out; never an exception per row.

``KirimClient`` sends ``httpx.Request`` objects to an httpx transport. Its ``transport=`` is
the seam: production uses ``transport.HttpTransport`` (see the README's Performance
section for why), tests may pass ``httpx.MockTransport``. Every call, success or failure,
comes back as a ``Reply``; transport failures (timeouts, resets, dropped connections) become
a ``Reply`` with ``status=0``.

``Reply.verdict`` sorts every answer into what the importer does next, following the table
in kirim-api.md:

- ``OK``: 2xx.
- ``RETRY``: 429, 500, 502, 503, 504, 409 ``idempotency_in_progress``, and transport errors;
  the same request goes again with the same idempotency key.
- ``EXISTS``: 409 ``conflict`` with any other code: the contact is already there.
- ``ROW``: any other 4xx: final for this row, the run goes on.
- ``STOP``: 401, 403, 404 ``resource_not_found`` on the account path, 422
  ``account_not_connected``: nothing more can succeed, the run stops.

The API key is sent only in the ``Authorization`` header and never appears in a ``Reply``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx

from importer.transport import HttpTransport

USER_AGENT = "kirim-import"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_STOP_CODES = frozenset({"resource_not_found", "account_not_connected"})
_IDEMPOTENCY_CODES = frozenset(
    {"idempotency_in_progress", "idempotency_key_reuse", "idempotency_conflict"}
)


class Verdict(Enum):
    OK = "ok"
    RETRY = "retry"
    EXISTS = "exists"
    ROW = "row"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer from Kirim, or the absence of one (``status == 0``)."""

    status: int
    data: Any = None
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    rate_remaining: int | None = None
    rate_limit: int | None = None
    replayed: bool = False

    @property
    def verdict(self) -> Verdict:
        if 200 <= self.status < 300:
            return Verdict.OK
        if self.status == 0 or self.status in _RETRY_STATUS:
            return Verdict.RETRY
        if self.status == 409 and self.error_code == "idempotency_in_progress":
            return Verdict.RETRY
        if self.status == 409 and self.error_code not in _IDEMPOTENCY_CODES:
            return Verdict.EXISTS
        if self.status in (401, 403) or self.error_code in _STOP_CODES:
            return Verdict.STOP
        return Verdict.ROW


def canonical_json(body: dict[str, Any]) -> str:
    """The exact bytes we send: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def idempotency_key(*, account: str, body: dict[str, Any]) -> str:
    """Deterministic: the same account and body give the same key, on every retry and rerun."""
    digest = hashlib.sha256(f"{account}\n{canonical_json(body)}".encode()).hexdigest()
    return f"kimp-{digest[:48]}"


_WANTED = frozenset(
    {"x-request-id", "retry-after", "x-ratelimit-remaining", "x-ratelimit-limit",
     "idempotent-replayed"}
)  # fmt: skip


def _wanted_headers(response: httpx.Response) -> dict[str, str]:
    """The headers a ``Reply`` carries, in one pass (the first of repeated ones)."""
    found: dict[str, str] = {}
    for raw_name, raw_value in response.headers.raw:
        name = raw_name.decode("latin-1").lower()
        if name in _WANTED and name not in found:
            found[name] = raw_value.decode("latin-1").strip()
    return found


def _int_header(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff applies instead


def reply_from(response: httpx.Response) -> Reply:
    """Turn an HTTP response into a ``Reply``, tolerating bodies that are not JSON."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    headers = _wanted_headers(response)
    return Reply(
        status=response.status_code,
        data=payload.get("data") if isinstance(payload, dict) else None,
        error_type=error.get("type"),
        error_code=error.get("code")
        or (None if response.is_success else f"http_{response.status_code}"),
        error_message=error.get("message")
        or (None if response.is_success else response.reason_phrase),
        request_id=headers.get("x-request-id") or error.get("request_id"),
        retry_after=_retry_after(headers),
        rate_remaining=_int_header(headers, "x-ratelimit-remaining"),
        rate_limit=_int_header(headers, "x-ratelimit-limit"),
        replayed=headers.get("idempotent-replayed", "").lower() == "true",
    )


def default_transport(*, max_connections: int) -> httpx.AsyncBaseTransport:
    """httpx's API over our lean HTTP/1.1 pool: measured several times faster here."""
    return HttpTransport(max_connections=max_connections)


class KirimClient:
    """The Kirim endpoints the importer uses; each method sends exactly one request.

    Requests go straight to the transport (``httpx.AsyncBaseTransport.handle_async_request``)
    as ``httpx.Request`` objects: httpx's API and its ``transport=`` seam, without
    ``AsyncClient``'s per-request cookie, URL-merging and redirect work, which we never need
    and which measured at about half of the client's CPU per request (README, Performance).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
        max_connections: int = 64,
    ) -> None:
        self._base = base_url.rstrip("/") + "/"
        self._transport = transport or default_transport(max_connections=max_connections)
        self._headers = [
            (b"Authorization", f"Bearer {api_key}".encode()),
            (b"User-Agent", USER_AGENT.encode()),
            (b"Accept", b"application/json"),
        ]
        self._urls: dict[str, httpx.URL] = {}
        self._timeout = {"connect": 10.0, "read": timeout_s, "write": timeout_s, "pool": timeout_s}

    async def __aenter__(self) -> KirimClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> Reply:
        headers = list(self._headers)
        content = None
        if body is not None:
            content = canonical_json(body).encode()
            headers.append((b"Content-Type", b"application/json"))
        if key is not None:
            headers.append((b"Idempotency-Key", key.encode()))
        if params is None:  # parsed once per path: URL parsing showed up in profiles
            url = self._urls.get(path) or self._urls.setdefault(path, httpx.URL(self._base + path))
        else:
            url = httpx.URL(self._base + path, params=params)
        request = httpx.Request(
            method, url, headers=headers, content=content, extensions={"timeout": self._timeout}
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except (TimeoutError, httpx.TransportError, OSError) as exc:
            return Reply(
                status=0,
                error_type="transport_error",
                error_code=type(exc).__name__,
                error_message=str(exc) or type(exc).__name__,
            )
        return reply_from(response)

    async def me(self) -> Reply:
        return await self._send("GET", "me")

    async def accounts(self) -> Reply:
        return await self._send("GET", "accounts", params={"status": "all"})

    async def find_by_phone(self, *, account: str, phone: str) -> Reply:
        return await self._send("GET", f"{account}/contacts", params={"phone": phone, "limit": 1})

    async def create(self, *, account: str, body: dict[str, Any], key: str) -> Reply:
        return await self._send("POST", f"{account}/contacts", body=body, key=key)

    async def update(self, *, account: str, contact_id: str, body: dict[str, Any]) -> Reply:
        return await self._send("PATCH", f"{account}/contacts/{contact_id}", body=body)
