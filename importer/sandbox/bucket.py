"""Token buckets for the write and read rate-limit classes.

Capacity equals the per-minute limit, the bucket starts full and refills continuously at
``limit / 60`` tokens per second. The clocks are injectable so tests can drive time by hand.
Buckets are used from the server's event-loop thread only, but a lock keeps ``peek`` from
other threads (statistics) consistent.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Slack for float rounding: a bucket holding 0.999999999 tokens after exactly the advertised
#: wait still admits the request, so a client honouring Retry-After is never refused.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of one bucket operation, with everything the response headers need."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class TokenBucket:
    """A continuously refilled token bucket (capacity = ``per_minute``, starts full)."""

    def __init__(
        self,
        *,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self._clock = clock
        self._wall = wall
        self._tokens = float(per_minute)
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> float:
        now = self._clock()
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
            self._last = now
        return self._tokens

    def _verdict(self, allowed: bool) -> Verdict:
        tokens = max(self._tokens, 0.0)
        to_full = (self.capacity - tokens) / self.rate
        # Ceil of the exact wait for one whole token; ``take`` tolerates the float error.
        wait = 0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate))
        return Verdict(
            allowed=allowed,
            limit=self.capacity,
            remaining=math.floor(tokens + _EPSILON),
            reset_at=math.ceil(self._wall() + to_full),
            retry_after=wait,
        )

    def take(self) -> Verdict:
        """Consume one token if a whole one is available."""
        with self._lock:
            tokens = self._refill()
            if tokens + _EPSILON >= 1.0:
                self._tokens = max(0.0, tokens - 1.0)
                return self._verdict(True)
            return self._verdict(False)

    def peek(self) -> Verdict:
        """Report the bucket without consuming (used where no token is charged, e.g. 401)."""
        with self._lock:
            self._refill()
            return self._verdict(True)

    @property
    def tokens(self) -> float:
        """Tokens available now (fractional)."""
        with self._lock:
            return self._refill()
