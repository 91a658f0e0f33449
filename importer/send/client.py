"""Talking to Kirim: one HTTP call in, one ``Reply`` value out; never an exception per row.

``KirimClient`` sends through an ``httpx.AsyncClient`` whose connections are aiohttp's
(``httpx_aiohttp.HttpxAiohttpClient``, the adapter the OpenAI Python SDK ships as its fast
option): httpx's API, its proxy rules and its TLS settings, with a connection pool that costs
a sixth of httpcore's CPU per request (README, "Which HTTP stack"). It builds each
``httpx.Request`` itself and hands it to ``AsyncClient.send`` (no per-call URL and cookie
merging, which profiles showed). Because the client builds its own transports,
httpx reads ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY`` (and the lower-case
forms), ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` exactly as its default client does. Tests pass
``transport=`` (``httpx.MockTransport``, say), which, as in httpx, replaces all of that.

Answers are read as a stream, capped (``MAX_ANSWER_BYTES``: a Kirim answer is a few KB, so
anything past the cap is not Kirim's) and bounded in time as a whole (``timeout_s``, besides
httpx's per-read timeouts, so a body that trickles forever ends too); past either, the
connection is dropped and the request counts as unanswered. Everything from the server a
``Reply`` carries (codes, messages, request ids from the header or the body, the body's data)
goes through ``redact`` with the run's key first, and so does any report or journal line.
Transport failures (timeouts, resets, refused TLS) become a ``Reply`` with ``status=0``.

``Reply.verdict`` sorts every answer into what the importer does next, following the table
in kirim-api.md:

- ``OK``: 2xx whose body has the shape the call expects (a contact with an ``id`` for a create
  or an update, a list for a lookup, an object for ``/v1/me``).
- ``RETRY``: 429, 500, 502, 503, 504, 409 ``idempotency_in_progress``, transport errors, a
  2xx we cannot read (an HTML page from a gateway, a cut body), and a 2xx whose contact is not
  the one asked for (``answer_mismatch``: another phone than the one sent, or for an update
  another id than the one patched): the contact may or may not exist, so the same request
  goes again with the same idempotency key.
- ``EXISTS``: 409 ``conflict`` with any other code: the contact is already there.
- ``AMBIGUOUS``: 422 ``idempotency_key_reuse`` and 409 ``idempotency_conflict``: Kirim has
  seen this key before, so an earlier attempt (this run's or a killed one's) may have created
  the contact. Never "nothing happened": only a lookup can tell.
- ``ROW``: any other 4xx: final for this row, the run goes on.
- ``STOP``: 401, 403, 404 ``resource_not_found`` on the account path, 422
  ``account_not_connected``, and a TLS certificate that does not verify: nothing more can
  succeed, the run stops.
- ``FAULT``: any other 5xx: not retried, and the contact may exist.

The API key is sent only in the ``Authorization`` header and never appears in a ``Reply``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import aiohttp
import aiohttp.http_exceptions
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from importer.options import TIMEOUT_S
from importer.redact import KEY_SHAPE, redact

USER_AGENT = "kirim-import"
MAX_ANSWER_BYTES = 1 << 20  # 1 MiB: Kirim's answers are a few KB
PAGE_SIZE = 100  # contacts a list page holds at most (``limit`` 1..100)
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_STOP_CODES = frozenset({"resource_not_found", "account_not_connected"})
_IDEMPOTENCY_CODES = frozenset(
    {"idempotency_in_progress", "idempotency_key_reuse", "idempotency_conflict"}
)
_KEY_SEEN_CODES = frozenset({"idempotency_key_reuse", "idempotency_conflict"})
UNREADABLE = "unreadable_answer"  # the error code of a 2xx whose body is not what we asked for
MISMATCH = "answer_mismatch"  # a 2xx whose contact is another one than the request's
CERTIFICATE = "certificate_refused"  # the server's TLS certificate did not verify


class Verdict(Enum):
    OK = "ok"
    RETRY = "retry"
    AMBIGUOUS = "ambiguous"
    EXISTS = "exists"
    ROW = "row"
    STOP = "stop"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer from Kirim, or the absence of one (``status == 0``)."""

    status: int
    data: Any = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    rate_remaining: int | None = None
    replayed: bool = False
    next_cursor: str | None = None  # a list answer with ``has_more``: where the next page starts

    @property
    def told(self) -> str:
        """What came back, for a person: Kirim's status and code, or that nothing did (a
        transport error is never worded as Kirim's answer)."""
        if self.status:
            return f"Kirim answered {self.status} {self.error_code}"
        return f"no answer from Kirim ({self.error_code})"

    @property
    def verdict(self) -> Verdict:
        if 200 <= self.status < 300:
            return Verdict.RETRY if self.error_code in (UNREADABLE, MISMATCH) else Verdict.OK
        if self.status == 0:
            return Verdict.STOP if self.error_code == CERTIFICATE else Verdict.RETRY
        if self.status in _RETRY_STATUS:
            return Verdict.RETRY
        if self.status == 409 and self.error_code == "idempotency_in_progress":
            return Verdict.RETRY
        if self.status in (409, 422) and self.error_code in _KEY_SEEN_CODES:
            return Verdict.AMBIGUOUS
        if self.status == 409 and self.error_code not in _IDEMPOTENCY_CODES:
            return Verdict.EXISTS
        if self.status in (401, 403) or self.error_code in _STOP_CODES:
            return Verdict.STOP
        return Verdict.FAULT if self.status >= 500 else Verdict.ROW


def canonical_json(body: dict[str, Any]) -> str:
    """The exact bytes we send: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def idempotency_key(*, account: str, body: dict[str, Any], generation: str = "") -> str:
    """Deterministic: the same account and body give the same key, on every retry and rerun.
    ``generation`` (the id of a contact Kirim deleted since it was created under the plain
    key) makes the key of the create that replaces it: deterministic too."""
    what = f"{account}\n{canonical_json(body)}"
    if generation:
        what += f"\n{generation}"
    digest = hashlib.sha256(what.encode()).hexdigest()
    return f"kimp-{digest[:48]}"


def _int_header(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the backoff applies instead


# What a 2xx must hold to count, per call: Kirim's answer proves the contact only this way.
Shape = Callable[[Any], bool]


def a_contact(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("id"), str | int) and data["id"] != ""


def same_phone(answered: object, sent: str) -> bool:
    """E.164 equality: the answer's phone, spaces and punctuation aside, is the one sent."""
    if not isinstance(answered, str) or not answered.startswith("+"):
        return False
    return "+" + "".join(c for c in answered if c.isdigit()) == sent


# What proves that a 2xx contact is the request's own: None, or why it is not.
Proof = Callable[[Any], str | None]


def the_contact(*, phone: str, contact_id: str | None = None) -> Proof:
    """The proof for a create (the phone sent) or an update (that phone and the id patched)."""

    def check(data: Any) -> str | None:
        if contact_id is not None and data.get("id") != contact_id:
            return f"Kirim answered the update of {contact_id} with another contact"
        if not same_phone(data.get("phone_number"), phone):
            return "Kirim answered with a contact that has another phone number"
        return None

    return check


def a_list(data: Any) -> bool:
    return isinstance(data, list)


def an_object(data: Any) -> bool:
    return isinstance(data, dict)


def a_label(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"] != ""


def labels_applied(data: Any) -> bool:
    """A ``bulk_label`` answer: how many were applied (and skipped), as counts."""
    return (
        isinstance(data, dict)
        and all(
            isinstance(data.get(k, 0), int) and not isinstance(data.get(k, 0), bool)
            for k in ("applied", "skipped_cross_org", "skipped_team_mismatch")
        )
        and "applied" in data
    )


def _redacted(value: Any, secrets: tuple[str, ...]) -> Any:
    """Every string in a JSON value through ``redact`` (object keys included)."""
    if isinstance(value, str):
        return redact(value, secrets=secrets)
    if isinstance(value, dict):
        return {_redacted(k, secrets): _redacted(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, secrets) for v in value]
    return value


def _may_hold_a_key(body: bytes, secrets: tuple[str, ...]) -> bool:
    """Whether a body needs the walk through ``_redacted``: a key (its shape or the run's own)
    or a JSON escape that could spell one. Most answers need not, and the walk costs."""
    return (
        b"\\" in body
        or any(s and s.encode() in body for s in secrets)
        or KEY_SHAPE.search(body.decode("utf-8", "replace")) is not None
    )


def reply_from(
    status: int,
    headers: httpx.Headers,
    body: bytes,
    shape: Shape,
    secrets: tuple[str, ...] = (),
    proof: Proof | None = None,
) -> Reply:
    """Turn an HTTP answer into a ``Reply``, tolerating bodies that are not JSON. Everything
    the server said that a ``Reply`` carries (codes, messages, request ids, the body's data)
    passes ``redact`` with the run's key first: a key echoed back never reaches a file."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:  # UnicodeDecodeError included
        payload = None
    if payload is not None and _may_hold_a_key(body, secrets):
        payload = _redacted(payload, secrets)
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    data = payload.get("data") if isinstance(payload, dict) else None
    code, message = error.get("code"), error.get("message")
    if 200 <= status < 300:
        if not shape(data):
            kind = headers.get("content-type", "no content type").split(";")[0]
            code, message = UNREADABLE, f"a {status} answer that is not Kirim's ({kind})"
        elif proof is not None and (why := proof(data)) is not None:
            code, message = MISMATCH, why
    else:
        code = code if isinstance(code, str) and code else f"http_{status}"
        message = message if isinstance(message, str) and message else f"HTTP {status}"
    request_id = headers.get("x-request-id") or error.get("request_id")
    page = payload if isinstance(payload, dict) else {}
    cursor = page.get("next_cursor") if page.get("has_more") is True else None
    return Reply(
        status=status,
        data=data,
        error_code=code if code is None else redact(code, secrets=secrets),
        error_message=message if message is None else redact(message, secrets=secrets),
        request_id=redact(request_id, secrets=secrets) if isinstance(request_id, str) else None,
        retry_after=_retry_after(headers.get("retry-after")),
        rate_remaining=_int_header(headers.get("x-ratelimit-remaining")),
        replayed=headers.get("idempotent-replayed", "").lower() == "true",
        next_cursor=cursor if isinstance(cursor, str) and cursor else None,
    )


def unanswered(exc: BaseException, secrets: tuple[str, ...] = ()) -> Reply:
    """No answer came (or none we could take): the request may or may not have arrived. A
    certificate that does not verify is told as such: no retry will change it. An answer
    aiohttp could not parse is told as that, never with the status aiohttp gives its own
    error (``400, message=...``), which would read as Kirim's."""
    cause: BaseException | None = exc
    refused: str | None = None
    unreadable: str | None = None
    while cause is not None:
        why = getattr(cause, "verify_message", None)  # ssl's own error (aiohttp's wraps one)
        if isinstance(cause, ssl.SSLCertVerificationError) and isinstance(why, str):
            message = (
                f"the server's TLS certificate was refused ({why}); if a company proxy or "
                "CA signs it, point SSL_CERT_FILE at that CA bundle"
            )
            return Reply(status=0, error_code=CERTIFICATE, error_message=message)
        if isinstance(cause, OSError) and cause.strerror and refused is None:
            refused = cause.strerror  # "Connection refused", "Name or service not known", ...
        if isinstance(cause, aiohttp.ClientResponseError) and unreadable is None:
            # aiohttp's parser refusing an answer: its status (400) is aiohttp's, not Kirim's
            unreadable = redact(str(cause.message).split("\n")[0] or "malformed", secrets=secrets)
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout) and refused is not None:
        message = f"could not connect: {refused}"
    elif unreadable is not None:
        message = (
            "no answer from Kirim: what came back is not readable HTTP (a transport or protocol "
            f"failure: {unreadable})"
        )
    else:
        try:
            text = str(exc)
        except Exception:  # some libraries' errors fail to print themselves
            text = ""
        message = redact(text or type(exc).__name__, secrets=secrets)
    return Reply(status=0, error_code=transport_code(exc), error_message=message)


# What the HTTP call may raise when the network or the server fails; only these become an
# unanswered request (a ``Reply`` with status 0).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError, aiohttp.ClientError, aiohttp.http_exceptions.HttpProcessingError,
    OSError, EOFError,
)  # fmt: skip


_PROTOCOL = (
    aiohttp.ClientResponseError, aiohttp.http_exceptions.HttpProcessingError, httpx.ProtocolError
)
_LOST = (
    ConnectionError, EOFError, httpx.ReadError, httpx.WriteError,
    aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
)  # fmt: skip


def transport_code(exc: BaseException) -> str:
    """Our own word for a request that got no usable answer (the README lists them), never
    the class name of whichever library raised it."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 16:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for link in chain:
        if isinstance(link, AnswerTooLarge):
            return "answer_too_large"
        if isinstance(link, httpx.ProxyError):
            return "proxy_error"
        if isinstance(link, ssl.SSLError):
            return "tls_error"
        if isinstance(link, ConnectionRefusedError):
            return "connect_refused"
        if isinstance(link, socket.gaierror):
            return "dns_failed"
    for link in chain:
        if isinstance(link, httpx.ConnectTimeout):
            return "connect_timeout"
        if isinstance(link, httpx.ReadTimeout | TimeoutError):
            return "read_timeout"
        if isinstance(link, httpx.TimeoutException):
            return "timeout"
        if isinstance(link, httpx.ConnectError | aiohttp.ClientConnectorError):
            return "connect_failed"
        if isinstance(link, _PROTOCOL):
            return "protocol_error"
        if isinstance(link, _LOST):
            return "connection_lost"
    return "transport_error"


def _not_found(reply: Reply, code: str) -> Reply:
    """A 404 on a contact's or label's own path: that thing is gone (deleted in Kirim), not
    the account, so the run goes on (``resource_not_found`` on the account path stops it)."""
    return replace(reply, error_code=code) if reply.status == 404 else reply


class AnswerTooLarge(httpx.TransportError):
    """The answer's body went past ``MAX_ANSWER_BYTES``: dropped, the request unanswered."""


class KirimClient:
    """The Kirim endpoints the importer uses; each method sends exactly one request."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = TIMEOUT_S,
        max_connections: int = 64,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._base = base_url.rstrip("/") + "/"
        self._headers = [
            ("Authorization", f"Bearer {api_key}"),
            ("User-Agent", USER_AGENT),
            ("Accept", "application/json"),
        ]
        self._http = HttpxAiohttpClient(
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            trust_env=True,  # proxies and CA settings from the environment, as httpx reads them
            follow_redirects=False,
        )
        self._urls: dict[str, httpx.URL] = {}  # parsed once per path: parsing showed in profiles
        self._cap = max_answer_bytes
        self._deadline = timeout_s
        self._secrets = (api_key,)

    async def __aenter__(self) -> KirimClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        shape: Shape,
        *,
        params: dict[str, str | int] | None = None,
        body: dict[str, Any] | None = None,
        key: str | None = None,
        proof: Proof | None = None,
    ) -> Reply:
        headers = list(self._headers)
        content = None
        if body is not None:
            content = canonical_json(body).encode()
            headers.append(("Content-Type", "application/json"))
        if key is not None:
            headers.append(("Idempotency-Key", key))
        if params is None:
            url = self._urls.get(path) or self._urls.setdefault(path, httpx.URL(self._base + path))
        else:
            url = httpx.URL(self._base + path, params=params)
        # built here and handed to send(): the client still picks the transport (proxy or
        # not) and applies its timeouts, without build_request's URL and cookie merging
        request = httpx.Request(method, url, headers=headers, content=content)
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._http.send(request, stream=True)
                try:
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self._cap:
                            raise AnswerTooLarge(f"an answer of more than {self._cap // 1024} KiB")
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except TimeoutError:
            return unanswered(TimeoutError(f"no whole answer within {self._deadline:g} s"))
        except TRANSPORT_ERRORS as exc:
            # httpx's transport errors, OS errors, and what the aiohttp adapter lets through
            # unmapped (a malformed answer): a value, never a traceback that shows the headers.
            # Anything else is a bug (ours, or an upgrade's): it is not retried as if Kirim
            # were unwell, it stops the run (``dispatch``: internal_error)
            return unanswered(exc, self._secrets)
        answer = b"".join(chunks)
        return reply_from(
            response.status_code, response.headers, answer, shape, self._secrets, proof
        )

    async def me(self) -> Reply:
        return await self._send("GET", "me", an_object)

    async def accounts(self) -> Reply:
        return await self._send("GET", "accounts", a_list, params={"status": "all"})

    async def find_by_phone(self, *, account: str, phone: str) -> Reply:
        params: dict[str, str | int] = {"phone": phone, "limit": 1}
        return await self._send("GET", f"{account}/contacts", a_list, params=params)

    async def create(self, *, account: str, body: dict[str, Any], key: str) -> Reply:
        proof = the_contact(phone=body["phone_number"])
        path = f"{account}/contacts"
        return await self._send("POST", path, a_contact, body=body, key=key, proof=proof)

    async def contacts_page(
        self, *, account: str, cursor: str | None = None, label_id: str | None = None
    ) -> Reply:
        """One page of the account's contacts (100, the most a page holds): the first, or the
        one ``cursor`` names; ``label_id``: only that label's members (``send.pages``)."""
        params: dict[str, str | int] = {"limit": PAGE_SIZE}
        if label_id is not None:
            params["label_id"] = label_id
        if cursor is not None:
            params["cursor"] = cursor
        return await self._send("GET", f"{account}/contacts", a_list, params=params)

    async def labels(self, *, cursor: str | None = None) -> Reply:
        """One page of the organisation's labels: the first, or the one ``cursor`` names."""
        params: dict[str, str | int] | None = None if cursor is None else {"cursor": cursor}
        return await self._send("GET", "labels", a_list, params=params)

    async def create_label(self, *, name: str) -> Reply:
        body = {"name": name}
        key = idempotency_key(account="labels", body=body)
        return await self._send("POST", "labels", a_label, body=body, key=key)

    async def bulk_label(
        self, *, account: str, label_id: str, contact_ids: list[str], operation: str = "attach"
    ) -> Reply:
        """Attach (or ``operation="detach"``: take off) a label. No idempotency key: attaching
        twice is harmless in itself, and a key would make Kirim replay the first answer's
        counts for 24 h, which say what it applied then, not now (``send.attach`` accounts per
        contact from them)."""
        body = {"contact_ids": contact_ids, "label_id": label_id, "operation": operation}
        path = f"{account}/contacts/bulk_label"
        reply = await self._send("POST", path, labels_applied, body=body)
        return _not_found(reply, "label_not_found")

    async def update(
        self, *, account: str, contact_id: str, phone: str, body: dict[str, Any]
    ) -> Reply:
        path = f"{account}/contacts/{contact_id}"
        proof = the_contact(phone=phone, contact_id=contact_id)
        reply = await self._send("PATCH", path, a_contact, body=body, proof=proof)
        return _not_found(reply, "contact_not_found")
