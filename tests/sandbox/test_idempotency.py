"""Idempotency-Key semantics: replay, reuse, in-progress, concurrency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.sandbox.fixtures import assert_error, client_for, contacts_path, phone, running


def test_replay_returns_the_same_contact_once() -> None:
    with running(write_per_minute=100) as sb, client_for(sb) as http:
        body = {"phone_number": phone(1), "name": "Ani", "metadata": {"x": 1, "y": 2}}
        first = http.post(contacts_path(sb), json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 201
        assert first.headers["Idempotent-Replayed"] == "false"
        # same body, other key order: canonical JSON makes it the same request
        reordered = {"metadata": {"y": 2, "x": 1}, "name": "Ani", "phone_number": phone(1)}
        second = http.post(contacts_path(sb), json=reordered, headers={"Idempotency-Key": "k1"})
        assert second.status_code == 201
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
        assert second.headers["X-Request-Id"] != first.headers["X-Request-Id"]
        assert sb.creations_by_phone() == {phone(1): 1}
        assert len(sb.contacts()) == 1
        # a replay is charged to the write bucket like any request
        assert int(second.headers["X-RateLimit-Remaining"]) == 98


def test_key_reuse_with_other_body_is_422() -> None:
    with running() as sb, client_for(sb) as http:
        headers = {"Idempotency-Key": "k1"}
        assert http.post(contacts_path(sb), json={"phone_number": phone(1)}, headers=headers)
        resp = http.post(contacts_path(sb), json={"phone_number": phone(2)}, headers=headers)
        assert_error(resp, 422, "invalid_request_error", "idempotency_key_reuse")
        # same body on another path is another request too
        resp = http.post("/labels", json={"phone_number": phone(1)}, headers=headers)
        assert_error(resp, 422, "invalid_request_error", "idempotency_key_reuse")
        assert sb.creations_by_phone() == {phone(1): 1}


def test_key_length_limit() -> None:
    with running() as sb, client_for(sb) as http:
        ok = http.post(
            contacts_path(sb),
            json={"phone_number": phone(1)},
            headers={"Idempotency-Key": "k" * 255},
        )
        assert ok.status_code == 201
        resp = http.post(
            contacts_path(sb),
            json={"phone_number": phone(2)},
            headers={"Idempotency-Key": "k" * 256},
        )
        error = assert_error(resp, 400, "invalid_request_error", "invalid_field_value")
        assert error["param"] == "Idempotency-Key"
        assert sb.creations_by_phone() == {phone(1): 1}


def test_validation_errors_are_stored_and_replayed() -> None:
    with running() as sb, client_for(sb) as http:
        headers = {"Idempotency-Key": "bad-row"}
        first = http.post(contacts_path(sb), json={"phone_number": "0812"}, headers=headers)
        second = http.post(contacts_path(sb), json={"phone_number": "0812"}, headers=headers)
        assert first.status_code == second.status_code == 400
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()


def _post_later(
    url: str, token: str, body: dict[str, str], key: str, delay: float
) -> httpx.Response:
    time.sleep(delay)
    return httpx.post(
        url,
        json=body,
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        timeout=10,
    )


def test_in_progress_is_409_after_the_wait() -> None:
    # the second request starts 0.15 s in, well inside the first one's 1.5 s: a loaded machine
    # cannot make them miss each other
    with running(latency_ms=1500, idempotency_wait_s=0.05) as sb:
        url = sb.base_url + contacts_path(sb)
        body = {"phone_number": phone(1)}
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(_post_later, url, sb.token, body, "k", 0.0)
            second = pool.submit(_post_later, url, sb.token, body, "k", 0.15)
            assert_error(second.result(), 409, "conflict", "idempotency_in_progress")
            assert first.result().status_code == 201
        again = _post_later(url, sb.token, body, "k", 0.0)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["data"]["id"] == first.result().json()["data"]["id"]
        assert sb.creations_by_phone() == {phone(1): 1}


def test_in_progress_waits_then_replays() -> None:
    with running(latency_ms=1500, idempotency_wait_s=5) as sb:
        url = sb.base_url + contacts_path(sb)
        body = {"phone_number": phone(1)}
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(_post_later, url, sb.token, body, "k", 0.0)
            second = pool.submit(_post_later, url, sb.token, body, "k", 0.1)
            assert second.result().status_code == 201
            assert second.result().headers["Idempotent-Replayed"] == "true"
            assert second.result().json() == first.result().json()
        assert sb.creations_by_phone() == {phone(1): 1}


def test_concurrent_same_key_creates_exactly_one_contact() -> None:
    with running(latency_ms=(20, 60), seed=3) as sb:
        url = sb.base_url + contacts_path(sb)
        barrier = threading.Barrier(20)

        def fire(_: int) -> httpx.Response:
            barrier.wait()
            return _post_later(url, sb.token, {"phone_number": phone(7)}, "same", 0.0)

        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(fire, range(20)))
        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["data"]["id"] for r in responses}) == 1
        assert (
            sorted(r.headers["Idempotent-Replayed"] for r in responses) == ["false"] + ["true"] * 19
        )
        assert sb.creations_by_phone() == {phone(7): 1}
        assert len(sb.contacts()) == 1
