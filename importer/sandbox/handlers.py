"""Endpoint logic. Each handler is synchronous (no awaits: storage is in memory, and running
without suspension makes check-then-create atomic on the event loop) and returns
``(status, document)``; the dispatcher adds ``request_id`` and serialises."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from importer.sandbox import validate as v
from importer.sandbox.errors import conflict, invalid, not_found
from importer.sandbox.state import SandboxState

Result = tuple[int, dict[str, Any]]
BULK_MAX = 1000


def me(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``GET /v1/me``: organisation, key and rate limits."""
    cfg = state.config
    last4 = state.token_last4(request.headers.get("Authorization")) or ""
    return 200, {
        "data": {
            "organization": {"id": state.organization_id, "name": state.organization_name},
            "api_key": {"id": state.api_key_id, "label": "sandbox", "last4": last4},
            "rate_limits": {
                "tier": cfg.tier,
                "write_per_minute": cfg.write_per_minute,
                "read_per_minute": cfg.read_per_minute,
            },
        }
    }


def accounts(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``GET /v1/accounts[?status=connected|all]`` (default all; not paginated)."""
    status = request.query.get("status", "all")
    if status not in ("all", "connected"):
        raise invalid("invalid_field_value", "status must be 'connected' or 'all'", param="status")
    rows = [
        {
            "phone_number_id": a.phone_number_id,
            "phone_number": a.phone_number,
            "name": a.name,
            "status": a.status,
        }
        for a in state.config.accounts
        if status == "all" or a.status == "connected"
    ]
    return 200, {"data": rows}


def create_contact(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``POST /v1/{phone_number_id}/contacts``.

    With ``on_duplicate_phone="conflict"`` a phone that already has a contact under the same
    account answers 409 ``contact_already_exists``; with ``"create"`` a second contact is made.
    """
    account = state.usable_account(request.match_info["phone_number_id"])
    number = v.phone(v.required(body, "phone_number"))
    name = v.optional_text(body, "name", max_len=v.NAME_MAX)
    email = v.email(body)
    metadata = v.metadata(body)
    key = request.match_info["phone_number_id"]
    if state.config.on_duplicate_phone == "conflict" and state.store.phone_exists(key, number):
        raise conflict(
            "contact_already_exists",
            f"a contact with phone_number {number} already exists",
            param="phone_number",
        )
    contact = state.store.create_contact(
        account=key,
        account_phone=account.phone_number,
        phone=number,
        name=name,
        email=email,
        metadata=metadata,
    )
    return 201, {"data": contact}


def list_contacts(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``GET /v1/{phone_number_id}/contacts?phone=&search=&limit=&cursor=``.

    ``phone`` is an exact lookup and must itself be E.164 (a ``+`` sent unencoded in a query
    string arrives as a space, and a 400 exposes that client bug instead of an empty page).
    ``search`` is a case-insensitive substring match on name or email. ``label_id`` (the
    contract is silent on listing a label's members; this sandbox's choice, which
    ``kirim-import export --label`` uses) keeps only the contacts that have that label.
    """
    key = request.match_info["phone_number_id"]
    state.usable_account(key)
    query = request.query
    size = v.limit(query.get("limit"))
    number = query.get("phone") or None
    if number is not None:
        v.phone(number, param="phone")
    search = query.get("search") or None
    label_id = query.get("label_id") or None  # not in the contract: see ``Store.page``
    if label_id is not None and state.store.label(label_id) is None:
        raise not_found(f"no label {label_id!r}", param="label_id")
    filters = (key, number or "", search or "", *((label_id,) if label_id else ()))
    cursor = query.get("cursor")
    start = v.decode_cursor(state.cursor_secret, cursor, filters) if cursor else 0
    rows, nxt = state.store.page(
        account=key, phone=number, search=search, start=start, limit=size, label_id=label_id
    )
    return 200, {
        "data": rows,
        "has_more": nxt is not None,
        "next_cursor": None if nxt is None else v.encode_cursor(state.cursor_secret, nxt, filters),
    }


def _contact_of(state: SandboxState, request: web.Request) -> tuple[str, dict[str, Any]]:
    key = request.match_info["phone_number_id"]
    state.usable_account(key)
    contact_id = request.match_info["contact_id"]
    contact = state.store.get_contact(key, contact_id)
    if contact is None:
        raise not_found(f"no contact {contact_id!r} under this account", param="id")
    return contact_id, contact


def get_contact(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``GET /v1/{phone_number_id}/contacts/{id}`` (not in the contract; handy for tests)."""
    return 200, {"data": _contact_of(state, request)[1]}


def update_contact(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``PATCH /v1/{phone_number_id}/contacts/{id}``: name, email, metadata.

    ``metadata`` merges shallowly into the stored object (a key set to null is removed); see
    ``Store.update_contact``. ``phone_number`` cannot change (400 invalid_field_value).
    """
    contact_id, _ = _contact_of(state, request)
    if "phone_number" in body:
        raise invalid("invalid_field_value", "phone_number cannot be changed", param="phone_number")
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = v.optional_text(body, "name", max_len=v.NAME_MAX)
    if "email" in body:
        changes["email"] = v.email(body)
    if "metadata" in body:
        changes["metadata"] = v.metadata(body) or {}
    return 200, {"data": state.store.update_contact(contact_id, changes)}


def list_labels(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``GET /v1/labels?limit=&cursor=``: in creation order, a page at a time as contacts are
    (the contract: "the list may page like the others"). Without ``limit`` a page holds
    ``SandboxConfig.label_page_size`` labels, so a test can put a label past the first page."""
    query = request.query
    size = v.limit(query.get("limit"), default=state.config.label_page_size)
    filters = ("labels",)
    cursor = query.get("cursor")
    start = v.decode_cursor(state.cursor_secret, cursor, filters) if cursor else 0
    rows, nxt = state.store.label_page(start=start, limit=size)
    return 200, {
        "data": rows,
        "has_more": nxt is not None,
        "next_cursor": None if nxt is None else v.encode_cursor(state.cursor_secret, nxt, filters),
    }


def create_label(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``POST /v1/labels``: ``name`` 1-50 characters, unique per ``team_id`` (409 otherwise)."""
    name = v.required(body, "name")
    if not isinstance(name, str) or not 1 <= len(name) <= 50:
        raise invalid("invalid_field_value", "name must be 1 to 50 characters", param="name")
    color = v.optional_text(body, "color", max_len=32)
    team_id = v.optional_text(body, "team_id", max_len=64)
    label = state.store.create_label(name=name, color=color, team_id=team_id)
    if label is None:
        raise conflict("label_already_exists", f"a label named {name!r} exists", param="name")
    return 201, {"data": label}


def bulk_label(state: SandboxState, request: web.Request, body: Any) -> Result:
    """``POST /v1/{phone_number_id}/contacts/bulk_label``.

    Counting (the contract names the fields only): ids the organisation does not have are
    ``skipped_cross_org``, a contact deleted in Kirim's app included (the contract has no
    field for it, and without tombstones a deleted id is indistinguishable from a foreign
    one: neither is the organisation's); contacts of an account outside the label's team
    (when the label has a ``team_id``) are ``skipped_team_mismatch``; every other distinct id
    is ``applied``, including ones that already had (attach) or lacked (detach) the label.
    """
    state.usable_account(request.match_info["phone_number_id"])
    ids = v.required(body, "contact_ids")
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= BULK_MAX
        or not all(isinstance(i, str) for i in ids)
    ):
        raise invalid(
            "invalid_field_value",
            f"contact_ids must be a list of 1 to {BULK_MAX} ids",
            param="contact_ids",
        )
    label_id = v.required(body, "label_id")
    if not isinstance(label_id, str) or state.store.label(label_id) is None:
        raise not_found(f"no label {label_id!r}", param="label_id")
    operation = v.required(body, "operation")
    if operation not in ("attach", "detach"):
        raise invalid(
            "invalid_field_value", "operation must be 'attach' or 'detach'", param="operation"
        )
    result = state.store.bulk_label(
        contact_ids=ids,
        label_id=label_id,
        attach=operation == "attach",
        account_teams=state.account_teams,
    )
    return 200, {"data": result}


def unmatched(state: SandboxState, request: web.Request, body: Any) -> Result:
    """Any other path or method."""
    raise not_found(f"no route for {request.method} {request.path}")
