"""Idempotency keys: fingerprints, in-progress claims and stored responses.

Scoped to the single sandbox organisation and kept for 24 hours (expired keys are dropped
lazily on lookup). Used only from the event-loop thread, hence ``asyncio.Event`` and no lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from importer.sandbox.ids import canonical

TTL_SECONDS = 24 * 3600.0
MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, body: object) -> str:
    """sha256 over method + path + canonical JSON of the body."""
    digest = hashlib.sha256(method.encode("ascii"))
    digest.update(path.encode("utf-8"))
    digest.update(canonical(body))
    return digest.hexdigest()


@dataclass(slots=True)
class Entry:
    """One key: its request fingerprint and, once finished, the stored response."""

    fingerprint: str
    created: float
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    body: bytes | None = None

    @property
    def completed(self) -> bool:
        """True once a response is stored."""
        return self.status is not None


class IdempotencyStore:
    """Key -> ``Entry``; a key is *claimed* while its first request runs."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[str, Entry] = {}

    def get(self, key: str) -> Entry | None:
        """The live entry for ``key`` (expired ones are forgotten)."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.created > TTL_SECONDS:
            del self._entries[key]
            entry.done.set()
            return None
        return entry

    def claim(self, key: str, fp: str) -> Entry:
        """Register ``key`` as in progress for the calling request."""
        entry = Entry(fingerprint=fp, created=self._clock())
        self._entries[key] = entry
        return entry

    def complete(self, key: str, entry: Entry, *, status: int, body: bytes) -> None:
        """Store the response of a finished first request and wake waiters."""
        entry.status = status
        entry.body = body
        entry.done.set()

    def release(self, key: str, entry: Entry) -> None:
        """Forget a claim whose request had no effect (fault, crash) and wake waiters."""
        if self._entries.get(key) is entry:
            del self._entries[key]
        entry.done.set()

    def __len__(self) -> int:
        return len(self._entries)
