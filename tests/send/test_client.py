"""The client and the retry layer through httpx's ``transport=`` seam (``MockTransport``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from importer.send.client import KirimClient, Reply, Verdict, canonical_json, idempotency_key
from importer.send.limiter import TokenBucket
from importer.send.retry import RetryPolicy, Sender
from importer.send.stop import Stop, Why
from tests.fakes import FakeClock

KEY = "kdv_live_" + "A" * 24
BODY = {"phone_number": "+6281234567890", "name": "Siti", "email": None}


def error(
    status: int,
    code: str,
    type_: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": {"type": type_, "code": code, "message": code, "request_id": "req_1"}},
        headers=headers,
    )


@pytest.mark.parametrize(
    ("response", "verdict"),
    [
        (httpx.Response(201, json={"data": {"id": "ctc_1"}}), Verdict.OK),
        (httpx.Response(200, json={"data": {"id": "ctc_1"}}), Verdict.OK),
        (error(429, "rate_limit_exceeded", "rate_limit_error"), Verdict.RETRY),
        (error(500, "internal_error", "api_error"), Verdict.RETRY),
        (httpx.Response(502, text="<html>bad gateway</html>"), Verdict.RETRY),
        (error(503, "upstream_error", "api_error"), Verdict.RETRY),
        (httpx.Response(504), Verdict.RETRY),
        (error(409, "idempotency_in_progress", "conflict"), Verdict.RETRY),
        (error(409, "contact_already_exists", "conflict"), Verdict.EXISTS),
        (error(422, "idempotency_key_reuse"), Verdict.ROW),
        (error(400, "invalid_phone_number"), Verdict.ROW),
        (error(401, "invalid_api_key", "authentication_error"), Verdict.STOP),
        (error(403, "phone_number_forbidden", "permission_error"), Verdict.STOP),
        (error(404, "resource_not_found", "not_found"), Verdict.STOP),
        (error(422, "account_not_connected"), Verdict.STOP),
    ],
)
def test_every_answer_has_a_verdict(response: httpx.Response, verdict: Verdict) -> None:
    reply = asyncio.run(_one(lambda _: response))
    assert reply.verdict is verdict


async def _one(handler: Callable[[httpx.Request], httpx.Response]) -> Reply:
    async with KirimClient(
        base_url="https://api.test/v1", api_key=KEY, transport=httpx.MockTransport(handler)
    ) as client:
        return await client.create(account="106540352242922", body=BODY, key="k")


def test_create_sends_the_canonical_body_key_and_auth_to_the_account_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            201,
            json={"data": {"id": "ctc_1"}},
            headers={
                "X-Request-Id": "req_9",
                "Idempotent-Replayed": "true",
                "X-RateLimit-Remaining": "41",
                "X-RateLimit-Limit": "60",
            },
        )

    reply = asyncio.run(_one(handler))
    request = seen[0]
    assert request.url == "https://api.test/v1/106540352242922/contacts"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"] == "k"
    assert request.content == canonical_json(BODY).encode()
    assert (reply.request_id, reply.replayed, reply.rate_remaining) == ("req_9", True, 41)
    assert KEY not in repr(reply)


def test_a_transport_failure_is_a_value_not_an_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    reply = asyncio.run(_one(handler))
    assert reply.status == 0
    assert reply.verdict is Verdict.RETRY
    assert reply.error_code == "ReadTimeout"


def test_idempotency_key_is_deterministic_and_depends_on_account_and_body() -> None:
    k = idempotency_key(account="1000001", body=BODY)
    assert k == idempotency_key(account="1000001", body=dict(reversed(list(BODY.items()))))
    assert k != idempotency_key(account="1000002", body=BODY)
    assert k != idempotency_key(account="1000001", body={**BODY, "name": "Sita"})
    assert len(k) <= 255


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
        httpx.Response(201, json={"data": {"id": "ctc_9"}}),
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
    script = Script(
        error(429, "rate_limit_exceeded", "rate_limit_error", {"Retry-After": "7"}),
        httpx.Response(201, json={"data": {"id": "ctc_1"}}),
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
