"""Identifiers, timestamps and JSON helpers shared by the sandbox modules."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Every 10-bit value as two Crockford characters: 13 lookups encode 130 bits.
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def ulid() -> str:
    """26 Crockford base32 characters: 48 bits of milliseconds then 80 random bits.

    Time first makes ids roughly sortable by creation, like the ULIDs Kirim appears to use.
    Encoded with a pair table because ``base64.b32encode`` is pure Python and slow.
    """
    n = ((time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")) << 2
    pairs = _PAIRS
    return "".join([pairs[(n >> shift) & 0x3FF] for shift in range(120, -1, -10)])


def request_id() -> str:
    """A fresh ``req_`` identifier."""
    return "req_" + ulid()


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z`` suffix."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _ENCODER.encode(value).encode("utf-8")


def canonical(value: Any) -> bytes:
    """Canonical JSON (sorted keys, compact) used for idempotency fingerprints."""
    return _CANONICAL.encode(value).encode("utf-8")
