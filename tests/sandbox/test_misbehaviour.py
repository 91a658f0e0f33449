"""Answers a misbehaving network gives, over real loopback HTTP: an HTML block page, a huge
body, a body that never ends, a forced 429, a 400 with a chosen message, malformed discovery
documents. None of them may have any effect: no contact, no stored idempotency key."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from importer.sandbox import Sandbox
from importer.sandbox.embed import SHUTDOWN_TIMEOUT_S
from importer.sandbox.faults import DEFAULT_OVERSIZE_BYTES
from importer.sandbox.misbehave import ENDLESS_CHUNK
from tests.sandbox.fixtures import (
    assert_error,
    client_for,
    contacts_path,
    phone,
    root_of,
    running,
    server_errors,
)

KEY = {"Idempotency-Key": "row-1"}


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Misbehaving on purpose must never look like a crash in the server's own logs."""
    with caplog.at_level(logging.WARNING):
        yield
    assert server_errors(caplog) == []


def _assert_no_effect_then_creates(sb: Sandbox, http: httpx.Client) -> None:
    """Nothing was created or claimed, and the same key later creates instead of replaying."""
    assert sb.contacts() == []
    assert sb.stats()["idempotency_keys"] == 0
    sb.set_faults(
        html_rate=0.0, oversize_rate=0.0, endless_rate=0.0, retry_after_s=None, error_message=None
    )
    resp = http.post(contacts_path(sb), json={"phone_number": phone(1)}, headers=KEY)
    assert resp.status_code == 201, resp.text
    assert resp.headers["Idempotent-Replayed"] == "false"
    assert sb.creations_by_phone() == {phone(1): 1}


def test_html_block_page() -> None:
    with running(html_rate=1.0, seed=1) as sb, client_for(sb) as http:
        resp = http.post(contacts_path(sb), json={"phone_number": phone(1)}, headers=KEY)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        assert resp.text.lstrip().startswith("<!DOCTYPE html>")
        assert "Blocked" in resp.text
        assert "X-Request-Id" not in resp.headers  # a gateway answered, not Kirim
        with pytest.raises(json.JSONDecodeError):
            resp.json()
        # only contact creates misbehave; reads and other writes are untouched
        assert http.get("/me").status_code == 200
        assert http.post("/labels", json={"name": "vip"}).status_code == 201
        stats = sb.stats()
        assert stats["injected"]["html"] == 1
        assert stats["status_counts"]["200"] == 2
        _assert_no_effect_then_creates(sb, http)


def test_html_share_is_seeded() -> None:
    def run() -> list[int]:
        with running(html_rate=0.5, seed=9) as sb, client_for(sb) as http:
            statuses = [
                http.post(contacts_path(sb), json={"phone_number": phone(i)}).status_code
                for i in range(30)
            ]
            assert sb.injected()["html"] == statuses.count(200)
            assert len(sb.contacts()) == statuses.count(201)
            return statuses

    first = run()
    assert set(first) == {200, 201}
    assert first == run()


def test_oversize_body_default_size() -> None:
    with running(oversize_rate=1.0) as sb, client_for(sb) as http:
        resp = http.post(contacts_path(sb), json={"phone_number": phone(1)}, headers=KEY)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert "Content-Length" not in resp.headers
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert len(resp.content) == DEFAULT_OVERSIZE_BYTES == 5 * 1024 * 1024
        padding = resp.json()["data"]["padding"]
        assert set(padding) == {"x"}
        assert sb.injected()["oversize"] == 1
        _assert_no_effect_then_creates(sb, http)


def test_oversize_client_that_stops_reading() -> None:
    with running(oversize_rate=1.0, oversize_bytes=64 * 1024 * 1024) as sb, client_for(sb) as http:
        with http.stream("POST", contacts_path(sb), json={"phone_number": phone(1)}) as resp:
            assert resp.status_code == 200
            seen = 0
            for chunk in resp.iter_raw():
                seen += len(chunk)
                if seen > 256 * 1024:
                    break  # a client with a body cap gives up here
        assert http.get("/me").status_code == 200
        sb.set_faults(oversize_bytes=100)
        resp = http.post(contacts_path(sb), json={"phone_number": phone(1)})
        assert len(resp.content) == 100
        assert resp.json() == {"data": {"padding": "x" * (100 - len('{"data":{"padding":""}}'))}}
        assert sb.injected()["oversize"] == 2
        assert sb.contacts() == []


def _read_endless(chunks: Iterator[bytes], writes: int) -> int:
    """Read until at least ``writes`` trickled chunks arrived; returns the bytes read."""
    seen = 0
    target = len('{"data":{"padding":"') + writes * len(ENDLESS_CHUNK)
    while seen < target:
        seen += len(next(chunks))
    return seen


def test_endless_body_keeps_coming_until_the_client_leaves() -> None:
    with running(endless_rate=1.0) as sb, client_for(sb) as http:
        started = time.monotonic()
        with http.stream(
            "POST", contacts_path(sb), json={"phone_number": phone(1)}, headers=KEY
        ) as resp:
            assert resp.status_code == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert "Content-Length" not in resp.headers
            _read_endless(resp.iter_raw(), writes=5)
        assert time.monotonic() - started >= 4 * 0.05  # it trickles: ~one chunk per 50 ms
        # the client closed its connection; the server stays healthy and serves others
        with client_for(sb) as other:
            assert other.get("/me").status_code == 200
        assert sb.injected()["endless"] == 1
        _assert_no_effect_then_creates(sb, http)


def test_endless_body_does_not_hold_up_shutdown() -> None:
    with running(endless_rate=1.0) as sb, client_for(sb) as http:  # noqa: SIM117
        with http.stream("POST", contacts_path(sb), json={"phone_number": phone(1)}) as resp:
            chunks = resp.iter_raw()
            _read_endless(chunks, writes=2)
            with client_for(sb) as other:  # served meanwhile
                assert other.get("/me").status_code == 200
            started = time.monotonic()
            sb.stop()
            assert time.monotonic() - started < SHUTDOWN_TIMEOUT_S
            with pytest.raises(httpx.RemoteProtocolError):  # the body never completes
                for _ in chunks:
                    pass


def test_retry_after_answers_every_write_429_without_charging() -> None:
    with running(retry_after_s=2.5, write_per_minute=60) as sb, client_for(sb) as http:
        path = contacts_path(sb)
        resp = http.post(path, json={"phone_number": phone(1)}, headers=KEY)
        error = assert_error(resp, 429, "rate_limit_error", "rate_limit_exceeded")
        assert resp.headers["Retry-After"] == "3"  # an integer, never less than asked
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert "3s" in error["message"]
        for method, url in (("PATCH", f"{path}/ctc_x"), ("POST", "/labels")):
            again = http.request(method, url, json={"name": "n"})
            assert again.status_code == 429
            assert again.headers["Retry-After"] == "3"
        assert http.get("/me").status_code == 200  # reads are not affected
        assert sb.injected()["retry_after"] == 3
        assert sb.rate_limited == 3
        sb.set_faults(retry_after_s=0)
        assert http.post("/labels", json={"name": "n"}).headers["Retry-After"] == "0"
        _assert_no_effect_then_creates(sb, http)
        # no write token was charged by the injected 429s: this is the second one taken
        last = http.post(path, json={"phone_number": phone(2)})
        assert last.headers["X-RateLimit-Remaining"] == "58"


def test_error_message_is_echoed_in_a_400() -> None:
    secret = "kdv_live_" + "S" * 24
    message = f"phone_number rejected for key {secret}"
    with running(error_message=message) as sb, client_for(sb) as http:
        resp = http.post(contacts_path(sb), json={"phone_number": phone(1)}, headers=KEY)
        error = assert_error(resp, 400, "invalid_request_error", "invalid_field_value")
        assert error["message"] == message
        assert "X-RateLimit-Limit" in resp.headers  # an API answer, with its usual headers
        # other writes work
        assert http.post("/labels", json={"name": "vip"}).status_code == 201
        assert sb.injected()["error_message"] == 1
        _assert_no_effect_then_creates(sb, http)


def test_echo_header_answers_with_a_request_header_as_the_request_id() -> None:
    with running() as sb, client_for(sb) as http:
        sb.set_faults(echo_header="Authorization")
        bearer = f"Bearer {sb.token}"
        created = http.post(contacts_path(sb), json={"phone_number": phone(1)}, headers=KEY)
        assert created.status_code == 201
        assert created.headers["X-Request-Id"] == bearer
        assert created.json()["request_id"] == bearer
        refused = http.post(contacts_path(sb), json={"phone_number": "12"})
        assert refused.headers["X-Request-Id"] == refused.json()["error"]["request_id"] == bearer
        no_such = http.get("/me", headers={"Authorization": "Bearer nope"})
        assert no_such.status_code == 401  # echoed before the key is checked, as an id is made
        assert no_such.headers["X-Request-Id"] == "Bearer nope"
        assert sb.injected()["echo_header"] == 3
        sb.set_faults(echo_header=None)
        assert http.get("/me").headers["X-Request-Id"].startswith("req_")


MALFORMED_ME = {"data": {"organization": [1, 2], "rate_limits": {"write_per_minute": -5}}}


def test_me_and_accounts_bodies_are_served_verbatim() -> None:
    with running(me_body=MALFORMED_ME) as sb, client_for(sb) as http:
        resp = http.get("/me")
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.json() == MALFORMED_ME  # exactly: no request_id added
        assert http.get("/accounts").json()["data"][0]["phone_number_id"] == sb.account_id
        sb.set_faults(accounts_body={"data": "not a list"}, me_body=None)
        assert http.get("/accounts?status=connected").json() == {"data": "not a list"}
        assert http.get("/me").json()["data"]["organization"]["id"] == sb.organization_id
        sb.set_faults(accounts_body=[])
        assert http.get("/accounts").json() == []
        assert sb.injected()["me_body"] == 1
        assert sb.injected()["accounts_body"] == 2


def test_body_setting_is_a_private_copy() -> None:
    body: dict[str, object] = {"data": {}}
    with running() as sb, client_for(sb) as http:
        sb.set_faults(me_body=body)
        body["data"] = "mutated"
        assert http.get("/me").json() == {"data": {}}
        served = sb.faults.me_body
        served["data"] = "mutated too"
        assert http.get("/me").json() == {"data": {}}


def test_injected_counts_in_state_view() -> None:
    with running(fault_rate=1.0, seed=3) as sb, client_for(sb) as http:
        http.post(contacts_path(sb), json={"phone_number": phone(1)})
        sb.set_faults(fault_rate=0.0, html_rate=1.0)
        http.post(contacts_path(sb), json={"phone_number": phone(2)})
        state = httpx.get(root_of(sb) + "/_sandbox/state").json()
        assert state["injected"] == {
            "fault": 1,
            "ambiguous": 0,
            "retry_after": 0,
            "error_message": 0,
            "label_status": 0,
            "wrong_contact": 0,
            "replay_conflict": 0,
            "echo_header": 0,
            "html": 1,
            "oversize": 0,
            "endless": 0,
            "me_body": 0,
            "accounts_body": 0,
        }
        assert state["faults"]["html_rate"] == 1.0
        assert state["faults"]["fault_rate"] == 0.0
        assert state == sb.stats()
