"""One retry policy for every request (``Sender``), through httpx's ``transport=`` seam and a
fake clock: retries with the same key, Retry-After honoured, budgets and stops."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from importer.send.client import KirimClient, Reply
from importer.send.limiter import TokenBucket
from importer.send.retry import RetryPolicy, Sender
from importer.send.stop import Stop, Why
from tests.fakes import FakeClock
from tests.send.test_client import BODY, CONTACT, KEY, error


class Script:
    """Answers a request with the next response in the list; records every request."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def _send_with_retries(
    script: Script, policy: RetryPolicy | None = None
) -> tuple[Reply, int, Sender, Stop, list[float]]:
    clock = FakeClock()
    slept = clock.slept
    stop = Stop()
    sender = Sender(stop=stop, policy=policy or RetryPolicy(), sleep=clock.sleep)
    writes = TokenBucket(per_minute=6000, clock=clock, sleep=clock.sleep, stop=stop)
    async with KirimClient(
        base_url="https://api.test/v1", api_key=KEY, transport=httpx.MockTransport(script)
    ) as client:
        reply, attempts = await sender.call(
            writes, lambda: client.create(account="106540352242922", body=BODY, key="same-key")
        )
    return reply, attempts, sender, stop, slept


def test_retries_transient_failures_with_the_same_key_until_success() -> None:
    script = Script(
        error(500, "internal_error", "api_error"),
        httpx.ConnectError("reset"),
        httpx.Response(502),
        httpx.Response(201, json={"data": CONTACT | {"id": "ctc_9"}}),
    )
    reply, attempts, sender, _, slept = asyncio.run(_send_with_retries(script))
    assert reply.status == 201
    assert attempts == 4
    assert {r.headers["idempotency-key"] for r in script.requests} == {"same-key"}
    assert [json.loads(r.content) for r in script.requests] == [BODY] * 4
    assert sender.stats.retries == 3
    assert len(slept) == 3
    assert all(0 <= s <= 30 for s in slept)


def test_a_final_4xx_is_not_retried() -> None:
    script = Script(error(400, "invalid_phone_number"))
    reply, attempts, _, _, _ = asyncio.run(_send_with_retries(script))
    assert (reply.status, attempts) == (400, 1)


def test_429_pauses_the_shared_bucket_for_retry_after() -> None:
    """One try only, so the retry loop's own wait is out of the picture: what holds the next
    worker back is the shared bucket, paused for the Retry-After."""

    async def go() -> tuple[Reply, float]:
        clock, stop = FakeClock(), Stop()
        sender = Sender(stop=stop, policy=RetryPolicy(max_attempts=1), sleep=clock.sleep)
        writes = TokenBucket(per_minute=6000, clock=clock, sleep=clock.sleep, stop=stop)
        script = Script(error(429, "rate_limit_exceeded", "rate_limit_error", {"Retry-After": "7"}))
        async with KirimClient(
            base_url="https://api.test/v1", api_key=KEY, transport=httpx.MockTransport(script)
        ) as client:
            reply, _ = await sender.call(
                writes, lambda: client.create(account="106540352242922", body=BODY, key="k")
            )
        start = clock.now
        assert await writes.acquire()  # another worker's next token, from a full bucket
        return reply, clock.now - start

    reply, waited = asyncio.run(go())
    assert reply.status == 429
    assert waited == pytest.approx(7.0, abs=0.01)


def test_a_429_is_retried_after_retry_after_without_spending_the_budget() -> None:
    script = Script(
        error(429, "rate_limit_exceeded", "rate_limit_error", {"Retry-After": "7"}),
        httpx.Response(201, json={"data": CONTACT}),
    )
    reply, attempts, sender, _, slept = asyncio.run(_send_with_retries(script))
    assert (reply.status, attempts, sender.stats.http_429) == (201, 2, 1)
    assert sum(slept) == pytest.approx(7.0, abs=0.01)  # waited out Retry-After, once
    assert sender.stats.fault_retries == 0  # a 429 does not spend the retry budget


def test_gives_up_after_the_cap_and_returns_the_last_answer() -> None:
    script = Script(*[httpx.Response(503) for _ in range(3)])
    reply, attempts, _, stop, _ = asyncio.run(
        _send_with_retries(script, RetryPolicy(max_attempts=3))
    )
    assert (reply.status, attempts) == (503, 3)
    assert not stop.requested


def test_the_run_wide_retry_budget_runs_out_on_a_storm_of_5xx() -> None:
    script = Script(*[httpx.Response(500) for _ in range(10)])
    policy = RetryPolicy(max_attempts=10, budget_min=4, budget_share=0.1)
    reply, attempts, sender, stop, _ = asyncio.run(_send_with_retries(script, policy))
    assert reply.status == 500
    assert attempts == 4  # the fourth retry would have spent the budget: not sent
    assert sender.stats.fault_retries == 4
    assert stop.why is Why.BUDGET
    assert len(script.requests) == 4


def test_every_wait_honours_retry_after_even_past_the_backoff() -> None:
    script = Script(
        error(503, "upstream_error", "api_error", {"Retry-After": "12"}),
        httpx.Response(201, json={"data": CONTACT}),
    )
    reply, attempts, _, _, slept = asyncio.run(_send_with_retries(script))
    assert (reply.status, attempts) == (201, 2)
    assert sum(slept) == pytest.approx(12.0)  # never less than Kirim asked


def test_a_2xx_that_is_not_a_contact_is_retried_with_the_same_key() -> None:
    script = Script(
        httpx.Response(
            200, text="<html>Blocked by policy</html>", headers={"Content-Type": "text/html"}
        ),
        httpx.Response(200, json={"data": {"object": "contact"}}),  # no id: proves nothing
        httpx.Response(201, json={"data": CONTACT}),
    )
    reply, attempts, _, _, _ = asyncio.run(_send_with_retries(script))
    assert (reply.status, reply.data, attempts) == (201, CONTACT, 3)
    assert {r.headers["idempotency-key"] for r in script.requests} == {"same-key"}


def test_a_wait_past_max_wait_stops_the_run_without_waiting() -> None:
    script = Script(
        error(429, "rate_limit_exceeded", "rate_limit_error", {"Retry-After": "100000000"})
    )
    reply, attempts, _, stop, slept = asyncio.run(
        _send_with_retries(script, RetryPolicy(max_wait_s=900))
    )
    assert (reply.status, attempts) == (429, 1)
    assert stop.why is Why.WAIT
    assert stop.reason is not None
    assert "wait 100000000 s" in stop.reason
    assert "rerun later" in stop.reason
    assert sum(slept) < 1.0


def test_a_stop_during_a_backoff_sends_nothing_more() -> None:
    clock = FakeClock()
    stop = Stop()
    told: list[tuple[float, int]] = []
    sender = Sender(stop=stop, sleep=clock.sleep, on_wait=lambda s, r: told.append((s, r.status)))
    script = Script(error(503, "upstream_error", "api_error", {"Retry-After": "60"}))

    async def scenario() -> tuple[Reply, int]:
        async with KirimClient(
            base_url="https://api.test/v1", api_key=KEY, transport=httpx.MockTransport(script)
        ) as client:
            call = asyncio.ensure_future(sender.call(None, client.me))
            while not clock.slept:  # the sender is in its wait
                await asyncio.sleep(0)
            stop.request(Why.SIGNAL, "interrupted by SIGTERM")
            return await call

    reply, attempts = asyncio.run(scenario())
    assert (reply.status, attempts) == (503, 1)  # the last answer; no second request
    assert len(script.requests) == 1
    assert sum(clock.slept) <= 1.0  # it left its 60 s wait within a slice
    assert told == [(60.0, 503)]  # a wait this long is told


def test_the_preflight_honours_retry_after_through_the_same_policy() -> None:
    clock = FakeClock()
    stop = Stop()
    sender = Sender(stop=stop, sleep=clock.sleep)
    script = Script(
        error(429, "rate_limit_exceeded", "rate_limit_error", {"Retry-After": "3"}),
        httpx.ConnectError("reset"),
        httpx.Response(200, json={"data": {"organization": {"id": "org_1"}}}),
    )

    async def scenario() -> tuple[Reply, int]:
        async with KirimClient(
            base_url="https://api.test/v1", api_key=KEY, transport=httpx.MockTransport(script)
        ) as client:
            return await sender.call(None, client.me)  # no bucket yet: before /v1/me answers

    reply, attempts = asyncio.run(scenario())
    assert (reply.status, attempts) == (200, 3)
    assert clock.slept[:3] == [1.0, 1.0, 1.0]  # Retry-After 3, in one-second slices
    assert sender.stats.http_429 == 1
