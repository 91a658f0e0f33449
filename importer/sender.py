"""Sending one request the way Kirim wants it: under the token bucket, retried with the same key.

``Sender.call`` takes a token from the right bucket (reads and writes are separate budgets),
sends, learns from the rate-limit headers, and retries what ``Reply.verdict`` calls
retryable, with jittered exponential backoff (tenacity), a cap per row, and a retry budget
for the whole run: when a sick server burns through the budget, ``budget_exhausted`` turns
true and the pipeline stops the run instead of hammering it. A 429 pauses the shared bucket,
so every worker waits out ``Retry-After``, not just the one that got it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

from importer.client import Reply, Verdict
from importer.limiter import Sleep, TokenBucket

NOT_SENT = Reply(
    status=0,
    error_code="not_attempted",
    error_message="the run stopped before this request was sent",
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8  # per request, first try included
    backoff_s: float = 0.25  # first backoff; doubles, with full jitter
    backoff_max_s: float = 30.0
    in_progress_wait_s: float = 2.0  # after 409 idempotency_in_progress
    budget_min: int = 100  # the run may always retry this often...
    budget_share: float = 0.5  # ...or this share of the requests sent, whichever is more


@dataclass(slots=True)
class SendStats:
    requests: int = 0
    http_429: int = 0
    retries: int = 0
    fault_retries: int = 0  # retries after a 5xx, a timeout or a reset (not 429 or 409)


class Sender:
    def __init__(
        self,
        *,
        writes: TokenBucket,
        reads: TokenBucket,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.writes = writes
        self.reads = reads
        self.policy = policy
        self.stats = SendStats()
        self.halted = False
        self._sleep = sleep
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff_s, max=policy.backoff_max_s
        )

    @property
    def budget_exhausted(self) -> bool:
        allowed = max(self.policy.budget_min, self.policy.budget_share * self.stats.requests)
        return self.stats.fault_retries >= allowed

    def _wait(self, state: RetryCallState) -> float:
        reply = state.outcome.result() if state.outcome else None
        if isinstance(reply, Reply):
            if reply.status == 429:
                return 0.0  # the bucket is paused until Retry-After; acquire() does the waiting
            if reply.error_code == "idempotency_in_progress":
                return self.policy.in_progress_wait_s
        return float(self._backoff(state))

    def halt(self) -> None:
        """The run is stopping: what is in flight finishes; nothing new is sent or retried."""
        self.halted = True
        self.writes.halt()
        self.reads.halt()

    def _should_stop(self, state: RetryCallState) -> bool:
        return (
            state.attempt_number >= self.policy.max_attempts or self.budget_exhausted or self.halted
        )

    async def call(
        self, kind: Literal["read", "write"], send: Callable[[], Awaitable[Reply]]
    ) -> tuple[Reply, int]:
        """Send until a final answer; returns it with the number of attempts made."""
        bucket = self.writes if kind == "write" else self.reads
        attempts = 0
        last: Reply | None = None

        async def attempt() -> Reply:
            nonlocal attempts, last
            if self.halted or not await bucket.acquire():
                return last or NOT_SENT  # a stop: keep what the last answer said, if any
            if last is not None:
                self.stats.retries += 1
                if last.status == 0 or last.status >= 500:
                    self.stats.fault_retries += 1
            attempts += 1
            self.stats.requests += 1
            reply = await send()
            bucket.observe(remaining=reply.rate_remaining)
            if reply.status == 429:
                self.stats.http_429 += 1
                bucket.pause(reply.retry_after if reply.retry_after is not None else 1.0)
            last = reply
            return reply

        first = await attempt()
        if first.verdict is not Verdict.RETRY or self.halted:
            return first, attempts  # the common case: no retry machinery built at all
        replies = [first]

        async def again() -> Reply:  # tenacity's first attempt is the one already made
            return replies.pop() if replies else await attempt()

        retrying = AsyncRetrying(
            stop=self._should_stop,
            wait=self._wait,
            retry=_RETRYABLE,
            sleep=self._sleep,
            retry_error_callback=_last_reply,
        )
        reply: Reply = await retrying(again)
        return reply, attempts


_RETRYABLE = retry_if_result(lambda r: isinstance(r, Reply) and r.verdict is Verdict.RETRY)


def _last_reply(state: RetryCallState) -> Reply | None:
    """When tenacity gives up: the last answer, as a value (never a RetryError)."""
    return state.outcome.result() if state.outcome else None


async def patiently(send: Callable[[], Awaitable[Reply]], *, sleep: Sleep) -> Reply:
    """One request outside the buckets (the pre-flight GETs), retried a few times on 429,
    5xx and network errors with the same backoff as every other request."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(5),
        wait=wait_random_exponential(multiplier=0.5, max=8),
        retry=_RETRYABLE,
        sleep=sleep,
        retry_error_callback=_last_reply,
    )
    reply: Reply = await retrying(send)
    return reply
