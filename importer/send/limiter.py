"""The client's side of Kirim's token bucket, shared by every worker of a run.

Kirim limits writes per organisation with a token bucket: capacity = the per-minute limit,
refilled steadily at limit/60 tokens per second. We keep a bucket of the same shape, so a
steady import spends the burst once and then sends exactly at the refill rate: next to no
429s. Two corrections keep it honest when others share the organisation's budget:

- ``observe(remaining=...)``: the server's ``X-RateLimit-Remaining`` after a response. If the
  server has clearly fewer tokens than we think (another integration spent some), we drop to
  its figure. We never raise our count from a header: responses arrive late and out of order.
- ``pause(seconds)``: a 429's ``Retry-After``. Every worker waits, not just the one that was
  told, and the bucket restarts empty.

Waiters are served first come, first served (``asyncio.Lock`` is fair), so no worker starves.
Once the run's ``Stop`` is requested, every waiter returns without a token. The clock and the
sleep are injected, so tests run on a fake clock with no real waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from importer.send.stop import Sleep, Stop

Clock = Callable[[], float]
_EPSILON = 1e-9  # float rounding must not leave a waiter sleeping for 1e-14 s forever


class TokenBucket:
    """Hands out one token per request at ``per_minute / 60`` per second after a burst."""

    def __init__(
        self,
        *,
        per_minute: float,
        capacity: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        sync_first: bool = False,
        stop: Stop | None = None,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self.per_minute = per_minute
        self.capacity = per_minute if capacity is None else capacity
        self._rate = per_minute / 60.0
        self._clock = clock
        self._sleep = sleep
        # sync_first: one request goes alone, and its X-RateLimit-Remaining says how much of
        # the burst is really left (others may have spent it); before that we assume 1 token
        self._syncing = sync_first
        self._tokens = 1.0 if sync_first else self.capacity
        self._stop = stop or Stop()
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @property
    def tokens(self) -> float:
        """Tokens available now (refilled up to the present)."""
        self._refill(self._clock())
        return self._tokens

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now

    async def acquire(self) -> bool:
        """Wait until a token is free, then take it; False once the run stops."""
        async with self._lock:
            while not self._stop.requested:
                now = self._clock()
                self._refill(now)
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif self._tokens >= 1.0 - _EPSILON:
                    self._tokens = max(self._tokens - 1.0, 0.0)
                    return True
                else:
                    wait = (1.0 - self._tokens) / self._rate
                await self._stop.nap(self._sleep, wait)
            return False

    def observe(self, *, remaining: int | None) -> None:
        """Align with the server's ``X-RateLimit-Remaining`` when it has clearly fewer."""
        if remaining is None:
            return
        self._refill(self._clock())
        if self._syncing:
            self._syncing = False
            self._tokens = float(min(max(remaining, 0), self.capacity))
        elif remaining < self._tokens - 1.0:
            self._tokens = float(max(remaining, 0))

    def pause(self, seconds: float) -> None:
        """A 429 said wait ``seconds``: nobody gets a token before then.

        The bucket empties now and refills during the pause, as the server's does.
        """
        now = self._clock()
        self._refill(now)
        self._tokens = 0.0
        self._paused_until = max(self._paused_until, now + max(seconds, 0.0))
