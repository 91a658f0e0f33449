"""Rate limiting over real sockets (the bucket arithmetic is unit-tested separately)."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.sandbox.fixtures import assert_error, client_for, contacts_path, phone, running


def test_write_bucket_drains_to_429_with_headers() -> None:
    with running(write_per_minute=6, read_per_minute=600) as sb, client_for(sb) as http:
        path = contacts_path(sb)
        # a bad key is refused before the bucket and costs nothing
        bad = httpx.post(sb.base_url + path, json={}, headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401
        assert bad.headers["X-RateLimit-Remaining"] == "6"
        remaining = []
        for i in range(6):
            resp = http.post(path, json={"phone_number": phone(i)})
            assert resp.status_code == 201
            assert resp.headers["X-RateLimit-Limit"] == "6"
            remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
        assert remaining == [5, 4, 3, 2, 1, 0]
        before = time.time()
        resp = http.post(path, json={"phone_number": phone(99)})
        error = assert_error(resp, 429, "rate_limit_error", "rate_limit_exceeded")
        assert "param" not in error
        retry_after = int(resp.headers["Retry-After"])
        assert retry_after == 10  # 0.1 token/s: ~10 s until a whole token, rounded up
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        reset = int(resp.headers["X-RateLimit-Reset"])
        assert before + 55 <= reset <= math.ceil(time.time()) + 60  # full again in ~60 s
        assert sb.creations_by_phone().get(phone(99)) is None
        # reads have their own bucket
        read = http.get("/me")
        assert read.status_code == 200
        assert read.headers["X-RateLimit-Limit"] == "600"
        assert sb.status_counts()[429] == 1
        assert sb.rate_limited == 1


def test_retry_after_is_honoured_by_refill() -> None:
    with running(write_per_minute=120) as sb, client_for(sb) as http:
        path = contacts_path(sb)
        statuses = [http.post("/labels", json={"name": f"l{i}"}).status_code for i in range(125)]
        assert statuses.count(201) >= 120
        refused = http.post(path, json={"phone_number": phone(1)})
        while refused.status_code != 429:
            refused = http.post(path, json={"phone_number": phone(1)})
        wait = int(refused.headers["Retry-After"])
        assert wait == 1  # 2 tokens/s
        time.sleep(wait)
        assert http.post(path, json={"phone_number": phone(2)}).status_code == 201


def test_concurrent_writers_never_exceed_capacity_plus_refill() -> None:
    per_minute = 30
    with running(write_per_minute=per_minute) as sb:
        url = sb.base_url + contacts_path(sb)
        barrier = threading.Barrier(40)

        def fire(n: int) -> list[int]:
            client = httpx.Client(headers={"Authorization": f"Bearer {sb.token}"}, timeout=10)
            barrier.wait()
            with client:
                return [
                    client.post(url, json={"phone_number": phone(n * 5 + k)}).status_code
                    for k in range(5)
                ]

        start = time.monotonic()
        with ThreadPoolExecutor(40) as pool:
            results = [s for batch in pool.map(fire, range(40)) for s in batch]
        elapsed = time.monotonic() - start
        admitted = results.count(201)
        assert len(results) == 200
        assert set(results) <= {201, 429}
        assert per_minute <= admitted <= per_minute + per_minute / 60 * elapsed + 1
        assert len(sb.contacts()) == admitted
        assert sb.status_counts().get(429, 0) == 200 - admitted
