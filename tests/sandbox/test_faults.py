"""Injected faults (no effect) and ambiguous failures (effect, then 502 or a dropped link)."""

from __future__ import annotations

import httpx

from tests.sandbox.fixtures import client_for, contacts_path, phone, running


def _send(http: httpx.Client, path: str, i: int, key: str | None) -> int:
    headers = {"Idempotency-Key": key} if key else {}
    try:
        return http.post(path, json={"phone_number": phone(i)}, headers=headers).status_code
    except httpx.TransportError:
        return 0


def test_faults_have_no_effect_and_retries_converge() -> None:
    with running(fault_rate=0.5, seed=1) as sb, client_for(sb) as http:
        path = contacts_path(sb)
        seen: list[int] = []
        for i in range(30):
            while True:
                status = _send(http, path, i, f"row-{i}")
                seen.append(status)
                if status == 201:
                    break
                assert status in (500, 502, 503)
        assert {500, 502, 503} <= set(seen)
        assert sb.creations_by_phone() == {phone(i): 1 for i in range(30)}
        assert sb.status_counts()[201] == 30
        # reads never fault
        for _ in range(10):
            assert http.get("/me").status_code == 200


def test_fault_envelope_and_no_stored_key() -> None:
    with running(fault_rate=1.0, seed=2) as sb, client_for(sb) as http:
        resp = http.post(
            contacts_path(sb), json={"phone_number": phone(1)}, headers={"Idempotency-Key": "k"}
        )
        assert resp.status_code in (500, 502, 503)
        error = resp.json()["error"]
        assert error["type"] == "api_error"
        assert error["code"] == ("internal_error" if resp.status_code == 500 else "upstream_error")
        assert error["request_id"] == resp.headers["X-Request-Id"]
        assert sb.contacts() == []
        assert sb.stats()["idempotency_keys"] == 0


def test_same_seed_same_outcomes() -> None:
    def run() -> list[int]:
        with running(fault_rate=0.3, ambiguous_rate=0.3, seed=42) as sb, client_for(sb) as http:
            return [_send(http, contacts_path(sb), i, None) for i in range(40)]

    first = run()
    assert first == run()
    assert {0, 201, 502} <= set(first)


def test_ambiguous_writes_take_effect_and_replay_on_retry() -> None:
    with running(ambiguous_rate=1.0, seed=5) as sb, client_for(sb) as http:
        path = contacts_path(sb)
        firsts = [_send(http, path, i, f"k{i}") for i in range(12)]
        assert set(firsts) == {0, 502}  # both modes: 502 and a dropped connection
        assert sb.creations_by_phone() == {phone(i): 1 for i in range(12)}
        for i in range(12):
            resp = http.post(
                path, json={"phone_number": phone(i)}, headers={"Idempotency-Key": f"k{i}"}
            )
            assert resp.status_code == 201
            assert resp.headers["Idempotent-Replayed"] == "true"
            assert resp.json()["data"]["phone_number"] == phone(i)
        assert sb.creations_by_phone() == {phone(i): 1 for i in range(12)}
        assert sb.status_counts()[0] == firsts.count(0)


def test_ambiguous_without_key_duplicates_on_retry() -> None:
    with running(ambiguous_rate=1.0, seed=5) as sb, client_for(sb) as http:
        assert _send(http, contacts_path(sb), 1, None) in (0, 502)
        assert _send(http, contacts_path(sb), 1, None) in (0, 502)
        assert sb.creations_by_phone() == {phone(1): 2}
