"""Sending one request the way Kirim wants it: under the token bucket, retried with the same key.

``Sender.call`` is the only way a request leaves, pre-flight included. One tenacity policy
drives every attempt, the first one too: take a token from the request's bucket (reads and
writes are separate budgets; the pre-flight has none yet), send, learn from the rate-limit
headers, and retry what ``Reply.verdict`` calls retryable, up to ``max_attempts``.

An answer whose verdict is ``STOP`` (a refused key, a missing account, a certificate that
does not verify) stops the run from here, whoever sent the request.

Every wait honours ``Retry-After`` (the contract: never wait less); without one, a jittered
exponential backoff. A 429 also pauses the shared bucket, so every worker waits it out, not
just the one that was told. Three things end the retrying early, each through the run's
``Stop``: the run stopping for any reason; the retry budget for the whole run being spent
(when a sick server burns through it, the run stops instead of hammering it); and a
``Retry-After`` longer than ``max_wait_s`` (the run stops; the journal makes a later rerun
safe).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from importer.options import MAX_ATTEMPTS, MAX_WAIT_S
from importer.send.client import Reply, Verdict
from importer.send.limiter import TokenBucket
from importer.send.stop import Sleep, Stop, Why

NOT_SENT = Reply(
    status=0,
    error_code="not_attempted",
    error_message="the run stopped before this request was sent",
)
LONG_WAIT_S = 10.0  # a wait at least this long is told to the person watching


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = MAX_ATTEMPTS  # per request, first try included
    backoff_s: float = 0.25  # first backoff; doubles, with full jitter
    backoff_max_s: float = 30.0
    in_progress_wait_s: float = 2.0  # after 409 idempotency_in_progress
    budget_min: int = 100  # the run may always retry this often...
    budget_share: float = 0.5  # ...or this share of the requests sent, whichever is more
    max_wait_s: float = MAX_WAIT_S  # a longer Retry-After stops the run (--max-wait)


# Labels: a few quick tries, and never the run's retry budget (a label outage must not stop
# an import whose contacts go through).
LABEL_POLICY = RetryPolicy(max_attempts=3, backoff_max_s=5.0, budget_min=10**9)


@dataclass(slots=True)
class SendStats:
    requests: int = 0
    http_429: int = 0
    retries: int = 0
    fault_retries: int = 0  # retries after a 5xx, a timeout or a reset (not 429 or 409)


class _StopRequested(stop_base):
    """tenacity's stop condition for the run's ``Stop``."""

    def __init__(self, stop: Stop) -> None:
        self._stop = stop

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._stop.requested


class _Stopped(Exception):
    pass


def _retryable(reply: object) -> bool:
    return isinstance(reply, Reply) and reply.verdict is Verdict.RETRY


def _last_reply(state: RetryCallState) -> Reply | None:
    """When tenacity gives up: the last answer, as a value (never a RetryError)."""
    return state.outcome.result() if state.outcome else None


class Sender:
    def __init__(
        self,
        *,
        stop: Stop,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
        on_wait: Callable[[float, Reply], None] | None = None,
    ) -> None:
        self.policy = policy
        self.stats = SendStats()
        self._stop = stop
        self._sleep = sleep
        self._on_wait = on_wait
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff_s, max=policy.backoff_max_s
        )
        self._retrying = AsyncRetrying(
            stop=stop_any(stop_after_attempt(policy.max_attempts), _StopRequested(stop)),
            wait=self._wait,
            retry=retry_if_result(_retryable),
            before_sleep=self._before_sleep,
            sleep=self._nap,
            retry_error_callback=_last_reply,
        )

    async def _nap(self, seconds: float) -> None:
        await self._stop.nap(self._sleep, seconds)

    def _wait(self, state: RetryCallState) -> float:
        reply = state.outcome.result() if state.outcome else None
        if isinstance(reply, Reply):
            if reply.retry_after is not None:
                if reply.retry_after > self.policy.max_wait_s:
                    self._stop.request(
                        Why.WAIT,
                        f"Kirim asks to wait {reply.retry_after:.0f} s (more than --max-wait "
                        f"{self.policy.max_wait_s:.0f} s); rerun later: the journal keeps "
                        "what was done",
                    )
                return reply.retry_after  # never less than Kirim asks
            if reply.error_code == "idempotency_in_progress":
                return self.policy.in_progress_wait_s
        return float(self._backoff(state))

    def _before_sleep(self, state: RetryCallState) -> None:
        """Count the retry about to happen; spend the budget on the ones after faults."""
        self.stats.retries += 1
        reply = state.outcome.result() if state.outcome else None
        if not isinstance(reply, Reply):
            return
        if reply.status == 0 or reply.status >= 500:
            self.stats.fault_retries += 1
            allowed = max(self.policy.budget_min, self.policy.budget_share * self.stats.requests)
            if self.stats.fault_retries >= allowed:
                self._stop.request(
                    Why.BUDGET,
                    f"retry budget spent ({self.stats.fault_retries} retries after server "
                    "errors or timeouts): Kirim looks unwell",
                )
        wait = state.upcoming_sleep
        if self._on_wait is not None and wait >= LONG_WAIT_S and not self._stop.requested:
            self._on_wait(wait, reply)

    async def call(
        self, bucket: TokenBucket | None, send: Callable[[], Awaitable[Reply]]
    ) -> tuple[Reply, int]:
        """Send until a final answer; returns it with the number of requests sent. After a
        stop, the last answer (or ``NOT_SENT`` when none was sent)."""
        last: Reply | None = None

        async def attempt() -> Reply:
            nonlocal last
            if self._stop.requested or (bucket is not None and not await bucket.acquire()):
                raise _Stopped
            self.stats.requests += 1
            reply = await send()
            if bucket is not None:
                bucket.observe(remaining=reply.rate_remaining)
                if reply.status == 429:
                    bucket.pause(reply.retry_after if reply.retry_after is not None else 1.0)
            if reply.status == 429:
                self.stats.http_429 += 1
            last = reply
            return reply

        retrying = self._retrying.copy()
        try:
            reply: Reply = await retrying(attempt)
        except _Stopped:
            return last or NOT_SENT, retrying.statistics["attempt_number"] - 1
        if reply.verdict is Verdict.STOP:  # nothing more can succeed: the run stops, here
            self._stop.request(
                Why.SERVER,
                f"{reply.told}: {reply.error_message}",
            )
        return reply, retrying.statistics["attempt_number"]
