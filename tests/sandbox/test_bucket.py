"""Unit tests of the token bucket with an injected clock."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from importer.sandbox.bucket import TokenBucket


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(per_minute: int) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    wall = FakeClock(1_700_000_000.0)

    def wall_fn() -> float:
        return wall.now + (clock.now - 1000.0)

    return TokenBucket(per_minute=per_minute, clock=clock, wall=wall_fn), clock


def test_starts_full_and_drains_to_429() -> None:
    bucket, _ = make(60)
    first = bucket.take()
    assert first.allowed
    assert first.limit == 60
    assert first.remaining == 59
    for _ in range(59):
        assert bucket.take().allowed
    refused = bucket.take()
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == 1  # 60/min -> one token per second
    assert refused.headers()["Retry-After"] == "1"
    # full again after 60 s
    assert refused.reset_at == 1_700_000_000 + 60


def test_refill_is_continuous_and_capped() -> None:
    bucket, clock = make(6)  # 0.1 token per second
    for _ in range(6):
        assert bucket.take().allowed
    refused = bucket.take()
    assert refused.retry_after == 10
    clock.now += 9.9
    assert not bucket.take().allowed
    clock.now += 0.1
    ok = bucket.take()
    assert ok.allowed
    assert ok.remaining == 0
    clock.now += 3600
    assert bucket.tokens == 6.0
    assert bucket.peek().remaining == 6


def test_peek_does_not_consume() -> None:
    bucket, _ = make(10)
    for _ in range(5):
        assert bucket.peek().remaining == 10
    assert "Retry-After" not in bucket.peek().headers()


def test_reset_is_when_full_not_next_token() -> None:
    bucket, clock = make(120)  # 2 tokens per second
    for _ in range(120):
        bucket.take()
    verdict = bucket.peek()
    assert verdict.reset_at == math.ceil(1_700_000_000.0 + 60)
    clock.now += 30
    assert bucket.peek().reset_at == math.ceil(1_700_000_000.0 + 30 + 30)


@settings(deadline=None)  # up to 10,000 takes a case: wall time is the shared machine's
@given(
    per_minute=st.integers(min_value=1, max_value=10_000),
    drained=st.floats(min_value=0.0, max_value=0.999, allow_nan=False),
)
def test_retry_after_is_never_shorter_than_the_real_wait(per_minute: int, drained: float) -> None:
    bucket, clock = make(per_minute)
    for _ in range(per_minute):
        assert bucket.take().allowed
    # let a fraction of one token come back
    clock.now += drained / bucket.rate
    refused = bucket.take()
    assert not refused.allowed
    real_wait = (1.0 - bucket.tokens) / bucket.rate
    assert refused.retry_after >= real_wait
    assert refused.retry_after >= 1
    clock.now += refused.retry_after
    assert bucket.take().allowed
