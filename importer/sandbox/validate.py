"""Request-body and query validation helpers.

Limits the contract leaves open are chosen here: names up to 256 characters, emails up to
254 (RFC 5321) matching a deliberately simple ``local@domain.tld`` pattern, metadata any JSON
object. Unknown body fields are ignored, like most JSON APIs do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Any

from importer.sandbox.errors import invalid

PHONE_RE = re.compile(r"\+[1-9]\d{6,14}")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
NAME_MAX = 256
EMAIL_MAX = 254


def required(body: dict[str, Any], key: str) -> Any:
    """The value of a required field (missing or null -> 400 missing_required_field)."""
    value = body.get(key)
    if value is None:
        raise invalid("missing_required_field", f"{key} is required", param=key)
    return value


def phone(value: Any, *, param: str = "phone_number") -> str:
    """An E.164 phone number with a leading ``+`` (else 400 invalid_phone_number)."""
    if not isinstance(value, str) or PHONE_RE.fullmatch(value) is None:
        raise invalid(
            "invalid_phone_number",
            f"{param} must be E.164 with a leading '+', e.g. +6281234567890",
            param=param,
        )
    return value


def optional_text(body: dict[str, Any], key: str, *, max_len: int) -> str | None:
    """An optional string field (null allowed) of at most ``max_len`` characters."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise invalid(
            "invalid_field_value",
            f"{key} must be a string of at most {max_len} characters",
            param=key,
        )
    return value


def email(body: dict[str, Any]) -> str | None:
    """An optional, nullable, plausibly formed email address."""
    value = optional_text(body, "email", max_len=EMAIL_MAX)
    if value is not None and EMAIL_RE.fullmatch(value) is None:
        raise invalid("invalid_field_value", "email is not a valid address", param="email")
    return value


def metadata(body: dict[str, Any]) -> dict[str, Any] | None:
    """An optional metadata object (null means absent)."""
    value = body.get("metadata")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("invalid_field_value", "metadata must be an object", param="metadata")
    return value


def limit(raw: str | None, *, default: int = 25) -> int:
    """The page size: 1..100, ``default`` when not given (else 400 invalid_limit)."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise invalid("invalid_limit", "limit must be an integer from 1 to 100", param="limit")
    return value


def _cursor_sig(secret: bytes, pos: int, filters: tuple[str, ...]) -> str:
    message = "\x00".join((str(pos), *filters)).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:20]


def encode_cursor(secret: bytes, pos: int, filters: tuple[str, ...]) -> str:
    """An opaque cursor: position plus an HMAC over position, account and filters.

    The HMAC key is per sandbox instance, so a cursor from another instance, from other
    filters or edited by hand is rejected as ``invalid_cursor``.
    """
    raw = f"{pos}.{_cursor_sig(secret, pos, filters)}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(secret: bytes, cursor: str, filters: tuple[str, ...]) -> int:
    """The position in a cursor made by ``encode_cursor`` for the same filters."""
    bad = invalid(
        "invalid_cursor", "cursor is malformed or belongs to other filters", param="cursor"
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        pos_text, sig = text.split(".", 1)
        pos = int(pos_text)
    except (ValueError, UnicodeError, binascii.Error):
        raise bad from None
    if pos < 0 or not hmac.compare_digest(sig, _cursor_sig(secret, pos, filters)):
        raise bad
    return pos
