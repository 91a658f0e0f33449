"""Endpoints, validation and error envelopes of the sandbox, over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from importer.sandbox import Sandbox
from tests.sandbox.fixtures import assert_error, client_for, contacts_path, phone, running


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with running() as box:
        yield box


@pytest.fixture
def http(sb: Sandbox) -> Iterator[httpx.Client]:
    with client_for(sb) as client:
        yield client


def test_me_reports_org_key_and_limits(sb: Sandbox, http: httpx.Client) -> None:
    resp = http.get("/me")
    assert resp.status_code == 200
    body = resp.json()
    assert body["request_id"] == resp.headers["X-Request-Id"]
    data = body["data"]
    assert data["organization"]["id"] == sb.organization_id
    assert data["organization"]["id"].startswith("org_")
    assert data["api_key"]["last4"] == sb.token[-4:]
    assert data["rate_limits"] == {
        "tier": "enterprise",
        "write_per_minute": 1_000_000,
        "read_per_minute": 1_000_000,
    }


def test_tiers() -> None:
    with running(write_per_minute=60, read_per_minute=600) as sb, client_for(sb) as http:
        assert http.get("/me").json()["data"]["rate_limits"]["tier"] == "free"
    with running(write_per_minute=600, read_per_minute=6000) as sb, client_for(sb) as http:
        assert http.get("/me").json()["data"]["rate_limits"]["tier"] == "pro"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer kc_live_" + "a" * 24,
        "Bearer kdv_test_" + "a" * 24,
        "Bearer kdv_live_" + "a" * 23,
        "Bearer kdv_live_" + "a" * 25,
        "Bearer kdv_live_" + "a" * 23 + "!",
        "Basic kdv_live_" + "a" * 24,
        "kdv_live_" + "a" * 24,
    ],
)
def test_bad_keys_are_401(sb: Sandbox, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (("GET", "/me"), ("POST", contacts_path(sb))):
        resp = httpx.request(method, sb.base_url + path, headers=headers, json={})
        assert_error(resp, 401, "authentication_error", "invalid_api_key")
        assert "X-RateLimit-Limit" in resp.headers


def test_any_well_formed_live_key_belongs_to_the_org(sb: Sandbox) -> None:
    token = "kdv_live_" + "Ab-_" * 6
    with client_for(sb, token=token) as http:
        resp = http.get("/me")
    assert resp.status_code == 200
    assert resp.json()["data"]["api_key"]["last4"] == "Ab-_"


def test_accounts_filter(sb: Sandbox, http: httpx.Client) -> None:
    rows = http.get("/accounts").json()["data"]
    assert [r["status"] for r in rows] == ["connected", "disconnected", "onboarding"]
    assert rows[2]["phone_number_id"] is None
    connected = http.get("/accounts", params={"status": "connected"}).json()["data"]
    assert [r["phone_number_id"] for r in connected] == [sb.account_id]
    assert http.get("/accounts", params={"status": "all"}).json()["data"] == rows
    resp = http.get("/accounts", params={"status": "nope"})
    assert_error(resp, 400, "invalid_request_error", "invalid_field_value")


@pytest.mark.parametrize("account", ["999999999", "12345", "abc123456", "1" * 21])
def test_unknown_account_is_404(http: httpx.Client, account: str) -> None:
    resp = http.post(f"/{account}/contacts", json={"phone_number": phone(1)})
    error = assert_error(resp, 404, "not_found", "resource_not_found")
    assert error["param"] == "phone_number_id"
    assert_error(http.get(f"/{account}/contacts"), 404, "not_found", "resource_not_found")


def test_disconnected_account_is_422(http: httpx.Client) -> None:
    resp = http.post("/106540352242923/contacts", json={"phone_number": phone(1)})
    assert_error(resp, 422, "invalid_request_error", "account_not_connected")


def test_create_contact_shape(sb: Sandbox, http: httpx.Client) -> None:
    body = {
        "phone_number": "+6281234500001",
        "name": "Ani",
        "email": "ani@example.com",
        "metadata": {"city": "Jakarta"},
    }
    resp = http.post(contacts_path(sb), json=body)
    assert resp.status_code == 201
    doc = resp.json()
    contact = doc["data"]
    assert doc["request_id"] == resp.headers["X-Request-Id"]
    assert contact["id"].startswith("ctc_")
    assert len(contact["id"]) == 4 + 26
    assert set(contact["id"][4:]) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert contact["object"] == "contact"
    assert contact["phone_number"] == body["phone_number"]
    assert contact["name"] == "Ani"
    assert contact["email"] == "ani@example.com"
    assert contact["metadata"] == {"city": "Jakarta"}
    assert contact["whatsapp_account"] == {"phone_number": "+15550100001"}
    assert contact["created_at"].endswith("Z")
    assert contact["created_at"] == contact["updated_at"]
    assert "Idempotent-Replayed" not in resp.headers  # only keyed writes carry it
    assert sb.creations_by_phone()["+6281234500001"] == 1
    assert http.get(f"{contacts_path(sb)}/{contact['id']}").json()["data"] == contact


def test_email_may_be_null(sb: Sandbox, http: httpx.Client) -> None:
    resp = http.post(contacts_path(sb), json={"phone_number": phone(9001), "email": None})
    assert resp.status_code == 201
    assert resp.json()["data"]["email"] is None
    assert resp.json()["data"]["name"] is None


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({}, "missing_required_field", "phone_number"),
        ({"phone_number": None}, "missing_required_field", "phone_number"),
        ({"phone_number": "081234567890"}, "invalid_phone_number", "phone_number"),
        ({"phone_number": "+62 812 3456 7890"}, "invalid_phone_number", "phone_number"),
        ({"phone_number": "+0812345678"}, "invalid_phone_number", "phone_number"),
        ({"phone_number": "+12345"}, "invalid_phone_number", "phone_number"),
        ({"phone_number": "+1234567890123456"}, "invalid_phone_number", "phone_number"),
        ({"phone_number": 6281234567890}, "invalid_phone_number", "phone_number"),
        ({"phone_number": "+6281234567890", "email": "nope"}, "invalid_field_value", "email"),
        ({"phone_number": "+6281234567890", "email": "a@b"}, "invalid_field_value", "email"),
        ({"phone_number": "+6281234567890", "email": 5}, "invalid_field_value", "email"),
        ({"phone_number": "+6281234567890", "name": 5}, "invalid_field_value", "name"),
        ({"phone_number": "+6281234567890", "name": "x" * 257}, "invalid_field_value", "name"),
        ({"phone_number": "+6281234567890", "metadata": []}, "invalid_field_value", "metadata"),
        ({"phone_number": "+6281234567890", "metadata": "x"}, "invalid_field_value", "metadata"),
    ],
)
def test_create_validation(
    sb: Sandbox, http: httpx.Client, body: dict[str, object], code: str, param: str
) -> None:
    before = len(sb.contacts())
    error = assert_error(
        http.post(contacts_path(sb), json=body), 400, "invalid_request_error", code
    )
    assert error["param"] == param
    assert len(sb.contacts()) == before


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2]", b'"text"', b"null"])
def test_malformed_body_is_an_invalid_field_value(
    sb: Sandbox, http: httpx.Client, raw: bytes
) -> None:
    resp = http.post(contacts_path(sb), content=raw, headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_request_error", "invalid_field_value")
    assert resp.json()["error"]["param"] == "body"


def test_unknown_route_is_404_with_envelope(sb: Sandbox, http: httpx.Client) -> None:
    before = sb.request_count("DELETE", "<unmatched>")
    assert_error(http.get("/nothing/here/at/all"), 404, "not_found", "resource_not_found")
    assert_error(http.delete("/me"), 404, "not_found", "resource_not_found")
    assert sb.request_count("DELETE", "<unmatched>") == before + 1


def test_head_is_a_read(sb: Sandbox, http: httpx.Client) -> None:
    resp = http.head("/me")
    assert resp.status_code == 200
    assert resp.headers["X-RateLimit-Limit"] == "1000000"
    assert sb.request_count("HEAD", "/v1/me") >= 1


def test_every_response_has_request_id_and_rate_headers(sb: Sandbox, http: httpx.Client) -> None:
    responses = [
        http.get("/me"),
        http.post(contacts_path(sb), json={"phone_number": phone(9100)}),
        http.post(contacts_path(sb), json={"phone_number": "bad"}),
        http.get("/999999999/contacts"),
        http.get(contacts_path(sb), params={"limit": 0}),
        httpx.get(sb.base_url + "/me"),
    ]
    ids = set()
    for resp in responses:
        rid = resp.headers["X-Request-Id"]
        assert rid.startswith("req_")
        assert len(rid) == 4 + 26
        ids.add(rid)
        limit = int(resp.headers["X-RateLimit-Limit"])
        remaining = int(resp.headers["X-RateLimit-Remaining"])
        assert 0 <= remaining <= limit
        assert int(resp.headers["X-RateLimit-Reset"]) > 1_600_000_000
    assert len(ids) == len(responses)


def test_duplicate_phone_creates_by_default() -> None:
    with running() as sb, client_for(sb) as http:
        first = http.post(contacts_path(sb), json={"phone_number": phone(1)})
        second = http.post(contacts_path(sb), json={"phone_number": phone(1)})
        assert first.status_code == second.status_code == 201
        assert first.json()["data"]["id"] != second.json()["data"]["id"]
        assert sb.creations_by_phone() == {phone(1): 2}
        found = http.get(contacts_path(sb), params={"phone": phone(1)}).json()["data"]
        assert len(found) == 2


def test_duplicate_phone_conflict_mode() -> None:
    with running(on_duplicate_phone="conflict") as sb, client_for(sb) as http:
        assert http.post(contacts_path(sb), json={"phone_number": phone(1)}).status_code == 201
        resp = http.post(contacts_path(sb), json={"phone_number": phone(1), "name": "Other"})
        error = assert_error(resp, 409, "conflict", "contact_already_exists")
        assert error["param"] == "phone_number"
        assert sb.creations_by_phone() == {phone(1): 1}
        assert len(sb.contacts()) == 1
        assert sb.status_counts() == {201: 1, 409: 1}
        assert sb.request_count("POST", "/v1/{phone_number_id}/contacts") == 2
