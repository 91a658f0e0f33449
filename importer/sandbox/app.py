"""The aiohttp application: routing and the request pipeline shared by every endpoint.

Pipeline, in order: request id (with ``echo_header``, that request header's value) -> auth
(401, no token charged) -> an injected 429 for writes when ``retry_after_s`` is set (no token
charged) -> rate-limit bucket of the method's class (429) -> for contact creates: an injected
400 (``error_message``) or a misbehaving answer (``importer.sandbox.misbehave``), both before
the body or the key is looked at -> for writes: body parsing, idempotency, latency, faults ->
handler. Reads of ``/v1/me`` and ``/v1/accounts`` may be answered with an injected body after
their latency. The fault settings are read once per request (``importer.sandbox.faults``).

Choices where the contract is silent:
* An idempotent replay is a request like any other and consumes a rate-limit token (Stripe
  counts replays too); it never faults and never creates anything.
* Every response to a completed write with a key is stored, 4xx included, so a retry sees the
  same answer; only injected faults (and crashes) leave the key unclaimed.
* A replay carries the stored body (with the original ``request_id``) but a fresh
  ``X-Request-Id`` header, so every HTTP exchange stays traceable.
* A 401 carries the rate-limit headers of its class without charging a token (there is only
  one organisation, so the bucket is known even for a bad key).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from importer.sandbox import handlers as h
from importer.sandbox import misbehave
from importer.sandbox.bucket import Verdict
from importer.sandbox.errors import ApiError, invalid
from importer.sandbox.faults import REPLAY_CONFLICTS, FaultSettings, Misbehaviour
from importer.sandbox.idempotency import MAX_KEY_LENGTH, Entry, fingerprint
from importer.sandbox.ids import dumps, now_iso, request_id, ulid
from importer.sandbox.state import DROPPED, SandboxState

log = logging.getLogger(__name__)

Handler = Callable[[SandboxState, web.Request, Any], h.Result]
AioHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STATE_KEY: web.AppKey[SandboxState] = web.AppKey("sandbox_state", SandboxState)
#: Set when the server begins to shut down, so endless bodies stop trickling at once.
CLOSING_KEY: web.AppKey[asyncio.Event] = web.AppKey("sandbox_closing", asyncio.Event)
#: Reads whose whole body a fault setting can replace, and that setting's name.
BODY_OVERRIDES: dict[Handler, str] = {h.me: "me_body", h.accounts: "accounts_body"}


def _run(
    handler: Handler, state: SandboxState, request: web.Request, body: Any, rid: str
) -> tuple[int, bytes]:
    try:
        status, doc = handler(state, request, body)
    except ApiError as err:
        return err.status, dumps(err.envelope(rid))
    doc["request_id"] = rid
    return status, dumps(doc)


async def _parse_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # a documented code (kirim-api.md lists only three for 400): the body is the field
        raise invalid("invalid_field_value", "the request body must be a JSON object", param="body")
    return body


def _fault(status: int) -> ApiError:
    if status == 500:
        return ApiError(500, "api_error", "internal_error", "injected internal error")
    return ApiError(status, "api_error", "upstream_error", "injected upstream error")


async def _claim(state: SandboxState, key: str, fp: str) -> Entry:
    """Claim ``key`` for this request, or wait for its first request and return its entry.

    Raises 422 ``idempotency_key_reuse`` for another body and 409 ``idempotency_in_progress``
    after ``idempotency_wait_s``. A returned entry is ours iff it is not completed.
    """
    store = state.idempotency
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.config.idempotency_wait_s
    while True:
        entry = store.get(key)
        if entry is None:
            return store.claim(key, fp)
        if entry.fingerprint != fp:
            raise ApiError(
                422,
                "invalid_request_error",
                "idempotency_key_reuse",
                "this Idempotency-Key was used with a different request",
                param="Idempotency-Key",
            )
        if entry.completed:
            return entry
        remaining = deadline - loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            await asyncio.wait_for(entry.done.wait(), remaining)
        except TimeoutError:
            raise ApiError(
                409,
                "conflict",
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed",
            ) from None


def _throttled(peeked: Verdict, retry_after: str, headers: dict[str, str]) -> ApiError:
    """The injected 429 (``retry_after_s``): the bucket's headers, but none remaining."""
    headers.update(peeked.headers())
    headers["X-RateLimit-Remaining"] = "0"
    headers["Retry-After"] = retry_after
    return ApiError(
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
        f"rate limit of {peeked.limit}/min exceeded; retry after {retry_after}s",
    )


async def _write(
    state: SandboxState,
    handler: Handler,
    request: web.Request,
    rid: str,
    headers: dict[str, str],
    faults: FaultSettings,
) -> tuple[int, bytes]:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise invalid(
            "invalid_field_value",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
            param="Idempotency-Key",
        )
    body = await _parse_body(request)
    entry: Entry | None = None
    if key is not None:
        entry = await _claim(state, key, fingerprint(request.method, request.path, body))
        if entry.completed and faults.replay_conflict is not None:
            state.faults.count("replay_conflict")
            raise ApiError(
                REPLAY_CONFLICTS[faults.replay_conflict],
                "conflict",
                faults.replay_conflict,
                "this Idempotency-Key was already used",
                param="Idempotency-Key",
            )
        if entry.completed:
            headers["Idempotent-Replayed"] = "true"
            assert entry.status is not None
            assert entry.body is not None
            return entry.status, entry.body
        headers["Idempotent-Replayed"] = "false"
    try:
        plan = state.plan_write(faults)
        if plan.outcome is not None:
            state.faults.count(plan.outcome)
        if plan.delay_s > 0.0:
            await asyncio.sleep(plan.delay_s)
        if plan.outcome == "fault":
            raise _fault(plan.status)
        status, payload = _run(handler, state, request, body, rid)
        if entry is not None and key is not None:
            state.idempotency.complete(key, entry, status=status, body=payload)
    finally:
        if entry is not None and key is not None and not entry.completed:
            state.idempotency.release(key, entry)
    if plan.outcome == "ambiguous":
        if plan.status == DROPPED:
            return DROPPED, b""
        raise _fault(plan.status)
    return status, payload


async def _wrong_contact(
    state: SandboxState, request: web.Request, faults: FaultSettings, rid: str
) -> tuple[int, bytes]:
    """A create or PATCH answered as if it worked, with a contact that is not the one asked
    for (``wrong_contact``): another contact of the account, or one that does not exist. No
    effect, no key claimed."""
    body = await _parse_body(request)
    account = request.match_info["phone_number_id"]
    asked = request.match_info.get("contact_id")
    other = None
    if faults.wrong_contact == "other":
        other = state.store.other_contact(
            account, phone=body.get("phone_number"), contact_id=asked
        )
    if other is None:  # made up: an id that does not exist (for a PATCH, on the contact's
        # own phone, so only the id tells); for a create, a phone nobody sent either
        own = state.store.get_contact(account, asked) if asked is not None else None
        phone = own["phone_number"] if own is not None else f"+62899{int(rid[-8:], 36) % 10**7:07d}"
        other = {
            "id": "ctc_" + ulid(), "object": "contact", "phone_number": phone,
            "name": body.get("name"), "email": body.get("email"),
            "metadata": body.get("metadata") or {}, "whatsapp_account": {"phone_number": None},
            "created_at": now_iso(), "updated_at": now_iso(),
        }  # fmt: skip
    status = 200 if asked is not None else 201
    return status, dumps({"data": other, "request_id": rid})


async def _read(
    state: SandboxState,
    handler: Handler,
    request: web.Request,
    rid: str,
    faults: FaultSettings,
    override: str | None,
) -> tuple[int, bytes]:
    """A read (or an unmatched write) after its latency; ``override`` names the fault setting
    whose body, when set, is served verbatim instead of the handler's."""
    await state.read_delay()
    replaced = None if override is None else faults.body(override)
    if override is not None and replaced is not None:
        state.faults.count(override)
        return 200, replaced
    return _run(handler, state, request, None, rid)


def endpoint(state: SandboxState, route: str, handler: Handler) -> AioHandler:
    """Wrap a handler in the shared pipeline; ``route`` names it in the statistics."""
    plain = handler is h.unmatched
    creates = handler is h.create_contact
    labels = handler is h.bulk_label
    contact_writes = creates or handler is h.update_contact
    override = BODY_OVERRIDES.get(handler)

    async def handle(request: web.Request) -> web.StreamResponse:
        faults = state.faults.current
        rid = request_id()
        if faults.echo_header is not None and faults.echo_header in request.headers:
            state.faults.count("echo_header")
            rid = request.headers[faults.echo_header]
        method = request.method
        is_write = method in WRITE_METHODS
        bucket = state.write_bucket if is_write else state.read_bucket
        headers = {"X-Request-Id": rid, "Content-Type": "application/json"}
        misbehaviour: Misbehaviour | None = None
        status, payload = 500, b""
        try:
            if state.token_last4(request.headers.get("Authorization")) is None:
                headers.update(bucket.peek().headers())
                raise ApiError(
                    401,
                    "authentication_error",
                    "invalid_api_key",
                    "missing or invalid API key (expected 'Bearer kdv_live_...')",
                )
            retry_after = faults.retry_after_header
            if is_write and retry_after is not None:
                state.faults.count("retry_after")
                raise _throttled(bucket.peek(), retry_after, headers)
            verdict = bucket.take()
            headers.update(verdict.headers())
            if not verdict.allowed:
                raise ApiError(
                    429,
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    f"rate limit of {verdict.limit}/min exceeded; retry after "
                    f"{verdict.retry_after}s",
                )
            if creates and faults.error_message is not None:
                state.faults.count("error_message")
                raise invalid("invalid_field_value", faults.error_message)
            if labels and faults.label_status is not None:
                state.faults.count("label_status")
                raise ApiError(
                    faults.label_status, "api_error", "internal_error", "labels are unavailable"
                )
            misbehaviour = state.plan_create(faults) if creates else None
            if contact_writes and misbehaviour is None and state.plan_wrong(faults):
                state.faults.count("wrong_contact")
                if faults.wrong_contact_effect:  # it happens; only the answer is wrong
                    status, payload = await _write(state, handler, request, rid, headers, faults)
                if not faults.wrong_contact_effect or 200 <= status < 300:
                    status, payload = await _wrong_contact(state, request, faults, rid)
            elif misbehaviour is None and is_write and not plain:
                status, payload = await _write(state, handler, request, rid, headers, faults)
            elif misbehaviour is None:
                status, payload = await _read(state, handler, request, rid, faults, override)
        except ApiError as err:
            status, payload = err.status, dumps(err.envelope(rid))
        except Exception:
            log.exception("sandbox handler crashed")
            crash = ApiError(500, "api_error", "internal_error", "unexpected sandbox error")
            status, payload = 500, dumps(crash.envelope(rid))
        if misbehaviour is not None:
            state.faults.count(misbehaviour)
            state.store.count(method, route, 200)
            closing = request.app[CLOSING_KEY]
            return await misbehave.answer(misbehaviour, request, headers, faults, closing)
        state.store.count(method, route, status)
        if status == DROPPED:
            # The write took effect; now lose the connection without answering.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=502)
        return web.Response(status=status, body=payload, headers=headers)

    return handle


async def _state_view(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.Response(body=dumps(state.stats()), headers={"Content-Type": "application/json"})


async def _faults_view(request: web.Request) -> web.Response:
    """``GET /_sandbox/faults``: the current settings; ``POST`` a JSON object of changes
    (same names as ``FaultSettings``; applied as a whole or not at all) answers the new ones.
    No auth, not counted, like ``/_sandbox/state``. Bad JSON, unknown names or values: 400."""
    state = request.app[STATE_KEY]
    json_type = {"Content-Type": "application/json"}
    if request.method == "POST":
        try:
            changes = json.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of fault settings")
            state.faults.update(**changes)
        except ValueError as exc:
            rid = request_id()
            error = invalid("invalid_field_value", str(exc), param="body").envelope(rid)
            return web.Response(
                status=400, body=dumps(error), headers={**json_type, "X-Request-Id": rid}
            )
    return web.Response(body=dumps(state.faults.current.as_json()), headers=json_type)


async def _closing(app: web.Application) -> None:
    app[CLOSING_KEY].set()


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/v1/me", h.me),
    ("GET", "/v1/accounts", h.accounts),
    ("GET", "/v1/labels", h.list_labels),
    ("POST", "/v1/labels", h.create_label),
    ("POST", "/v1/{phone_number_id}/contacts/bulk_label", h.bulk_label),
    ("POST", "/v1/{phone_number_id}/contacts", h.create_contact),
    ("GET", "/v1/{phone_number_id}/contacts", h.list_contacts),
    ("GET", "/v1/{phone_number_id}/contacts/{contact_id}", h.get_contact),
    ("PATCH", "/v1/{phone_number_id}/contacts/{contact_id}", h.update_contact),
)


def make_app(state: SandboxState) -> web.Application:
    """Build the aiohttp application serving ``state``."""
    app = web.Application(client_max_size=1024 * 1024)
    app[STATE_KEY] = state
    app[CLOSING_KEY] = asyncio.Event()
    app.on_shutdown.append(_closing)
    app.router.add_get("/_sandbox/state", _state_view)
    app.router.add_get("/_sandbox/faults", _faults_view)
    app.router.add_post("/_sandbox/faults", _faults_view)
    for method, path, handler in ROUTES:
        if method == "GET":  # add_get also answers HEAD (the read class covers both)
            app.router.add_get(path, endpoint(state, path, handler))
        else:
            app.router.add_route(method, path, endpoint(state, path, handler))
    app.router.add_route("*", "/{tail:.*}", endpoint(state, "<unmatched>", h.unmatched))
    return app
