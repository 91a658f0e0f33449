"""The client-side token bucket, on a fake clock: no real time passes."""

from __future__ import annotations

import asyncio

import pytest

from importer.send.limiter import TokenBucket
from tests.fakes import FakeClock


def bucket(per_minute: float, clock: FakeClock, capacity: float | None = None) -> TokenBucket:
    return TokenBucket(per_minute=per_minute, capacity=capacity, clock=clock, sleep=clock.sleep)


def test_burst_then_steady_rate() -> None:
    clock = FakeClock()
    b = bucket(60, clock)

    async def take(n: int) -> list[float]:
        times = []
        for _ in range(n):
            await b.acquire()
            times.append(clock.now - 1000.0)
        return times

    times = asyncio.run(take(70))
    assert times[:60] == [0.0] * 60  # the whole burst at once
    assert times[60:] == pytest.approx([float(i) for i in range(1, 11)])  # then 1 per second


def test_never_admits_more_than_capacity_plus_refill() -> None:
    clock = FakeClock()
    b = bucket(600, clock)
    stamps: list[float] = []

    async def worker() -> None:
        for _ in range(50):
            await b.acquire()
            stamps.append(clock.now - 1000.0)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(20)))

    asyncio.run(main())
    assert len(stamps) == 1000
    for t in {0.0, 1.0, 10.0, 30.0, max(stamps)}:
        admitted = sum(1 for s in stamps if s <= t + 1e-9)
        assert admitted <= 600 + 10 * t + 1


def test_pause_holds_every_waiter_until_retry_after() -> None:
    clock = FakeClock()
    b = bucket(60, clock)

    async def main() -> list[float]:
        b.pause(5.0)
        got: list[float] = []

        async def one() -> None:
            await b.acquire()
            got.append(clock.now - 1000.0)

        await asyncio.gather(*(one() for _ in range(3)))
        return got

    got = asyncio.run(main())
    assert min(got) >= 5.0  # nobody went before Retry-After
    assert got == pytest.approx([5.0, 5.0, 5.0], abs=1.01)  # refilled during the pause


def test_observe_drops_to_the_server_count_only_when_clearly_lower() -> None:
    clock = FakeClock()
    b = bucket(600, clock)
    b.observe(remaining=599)
    assert b.tokens == pytest.approx(600)  # within a token: a late header, ignored
    b.observe(remaining=100)
    assert b.tokens == pytest.approx(100)  # someone else spent the budget
    b.observe(remaining=500)
    assert b.tokens == pytest.approx(100)  # never raised by a header
    b.observe(remaining=None)
    assert b.tokens == pytest.approx(100)


def test_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(per_minute=0)
