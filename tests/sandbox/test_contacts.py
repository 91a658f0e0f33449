"""Listing, pagination, PATCH and labels."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from importer.sandbox import Sandbox
from tests.sandbox.fixtures import assert_error, client_for, contacts_path, phone, running


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with running() as box:
        yield box


@pytest.fixture
def http(sb: Sandbox) -> Iterator[httpx.Client]:
    with client_for(sb) as client:
        yield client


def create(http: httpx.Client, sb: Sandbox, i: int, **extra: Any) -> dict[str, Any]:
    resp = http.post(contacts_path(sb), json={"phone_number": phone(i), **extra})
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()["data"]
    return data


def walk(http: httpx.Client, sb: Sandbox, **params: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        resp = http.get(contacts_path(sb), params=query)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages += 1
        ids += [c["id"] for c in body["data"]]
        assert body["has_more"] == (body["next_cursor"] is not None)
        if not body["has_more"]:
            return ids, pages
        cursor = body["next_cursor"]


def test_pagination_walks_everything_once(sb: Sandbox, http: httpx.Client) -> None:
    created = [create(http, sb, i, name=f"Person {i}")["id"] for i in range(53)]
    ids, pages = walk(http, sb, limit=10)
    assert ids == created
    assert pages == 6
    ids, pages = walk(http, sb)
    assert ids == created
    assert pages == 3  # default limit 25
    ids, pages = walk(http, sb, limit=100)
    assert (ids, pages) == (created, 1)
    ids, pages = walk(http, sb, limit=53)
    assert (ids, pages) == (created, 1)


def test_rows_created_while_paging_are_not_lost(sb: Sandbox, http: httpx.Client) -> None:
    created = [create(http, sb, i)["id"] for i in range(5)]
    first = http.get(contacts_path(sb), params={"limit": 3}).json()
    created.append(create(http, sb, 100)["id"])
    second = http.get(contacts_path(sb), params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [c["id"] for c in first["data"] + second["data"]] == created
    assert second["has_more"] is False


def test_phone_lookup_and_search(sb: Sandbox, http: httpx.Client) -> None:
    create(http, sb, 1, name="Budi Santoso", email="budi@example.com")
    create(http, sb, 2, name="Siti", email="siti@mail.id")
    create(http, sb, 3, name="Budiman")
    found = http.get(contacts_path(sb), params={"phone": phone(2)}).json()
    assert [c["name"] for c in found["data"]] == ["Siti"]
    assert found["has_more"] is False
    assert http.get(contacts_path(sb), params={"phone": phone(99)}).json()["data"] == []
    names = [
        c["name"] for c in http.get(contacts_path(sb), params={"search": "budi"}).json()["data"]
    ]
    assert names == ["Budi Santoso", "Budiman"]
    by_mail = http.get(contacts_path(sb), params={"search": "MAIL.ID"}).json()["data"]
    assert [c["name"] for c in by_mail] == ["Siti"]
    ids, pages = walk(http, sb, search="budi", limit=1)
    assert len(ids) == 2
    assert pages == 2
    error = assert_error(
        http.get(contacts_path(sb), params={"phone": "0812"}),
        400,
        "invalid_request_error",
        "invalid_phone_number",
    )
    assert error["param"] == "phone"


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "2.5", ""])
def test_invalid_limit(sb: Sandbox, http: httpx.Client, limit: str) -> None:
    resp = http.get(contacts_path(sb), params={"limit": limit})
    assert assert_error(resp, 400, "invalid_request_error", "invalid_limit")["param"] == "limit"


def test_invalid_cursor(sb: Sandbox, http: httpx.Client) -> None:
    for i in range(3):
        create(http, sb, i, name=f"N{i}")
    cursor = http.get(contacts_path(sb), params={"limit": 1}).json()["next_cursor"]
    assert cursor
    for bad in ("garbage", "!!!", cursor[:-2], cursor + "x", "MTAuYWJj"):
        resp = http.get(contacts_path(sb), params={"cursor": bad})
        assert_error(resp, 400, "invalid_request_error", "invalid_cursor")
    # tied to its filters
    resp = http.get(contacts_path(sb), params={"cursor": cursor, "search": "N"})
    assert_error(resp, 400, "invalid_request_error", "invalid_cursor")
    # and to its sandbox instance
    with running() as other, client_for(other) as http2:
        resp = http2.get(contacts_path(other), params={"cursor": cursor})
        assert_error(resp, 400, "invalid_request_error", "invalid_cursor")
    # a good cursor still works with another page size
    assert http.get(contacts_path(sb), params={"cursor": cursor, "limit": 5}).status_code == 200


def test_patch_merges_metadata(sb: Sandbox, http: httpx.Client) -> None:
    contact = create(http, sb, 1, name="Old", metadata={"a": 1, "b": 2})
    url = f"{contacts_path(sb)}/{contact['id']}"
    resp = http.patch(url, json={"name": "New", "metadata": {"b": 3, "c": 4, "a": None}})
    assert resp.status_code == 200
    data = resp.json()["data"]
    assert data["name"] == "New"
    assert data["metadata"] == {"b": 3, "c": 4}
    assert data["email"] is None
    assert data["id"] == contact["id"]
    assert data["updated_at"] >= contact["updated_at"]
    resp = http.patch(url, json={"email": "new@example.com"})
    assert resp.json()["data"]["metadata"] == {"b": 3, "c": 4}
    assert resp.json()["data"]["email"] == "new@example.com"
    unchanged = http.patch(url, json={}).json()["data"]
    assert unchanged == resp.json()["data"]
    assert sb.contacts()[0]["name"] == "New"
    assert sb.creations_by_phone() == {phone(1): 1}


def test_patch_errors(sb: Sandbox, http: httpx.Client) -> None:
    contact = create(http, sb, 1)
    url = f"{contacts_path(sb)}/{contact['id']}"
    missing = f"{contacts_path(sb)}/ctc_00000000000000000000000000"
    assert_error(http.patch(missing, json={"name": "x"}), 404, "not_found", "resource_not_found")
    assert_error(
        http.patch(url, json={"email": "bad"}), 400, "invalid_request_error", "invalid_field_value"
    )
    assert_error(
        http.patch(url, json={"metadata": [1]}),
        400,
        "invalid_request_error",
        "invalid_field_value",
    )
    assert_error(
        http.patch(url, json={"phone_number": phone(2)}),
        400,
        "invalid_request_error",
        "invalid_field_value",
    )
    other = f"/106540352242923/contacts/{contact['id']}"
    assert_error(http.patch(other, json={}), 422, "invalid_request_error", "account_not_connected")


def test_labels_and_bulk_label(sb: Sandbox, http: httpx.Client) -> None:
    assert http.get("/labels").json()["data"] == []
    resp = http.post("/labels", json={"name": "VIP", "color": "#ff0000"})
    assert resp.status_code == 201
    vip = resp.json()["data"]
    assert vip["id"].startswith("lbl_")
    assert (vip["name"], vip["color"], vip["team_id"]) == ("VIP", "#ff0000", None)
    assert_error(
        http.post("/labels", json={"name": "VIP"}), 409, "conflict", "label_already_exists"
    )
    team = http.post("/labels", json={"name": "VIP", "team_id": "team_1"}).json()["data"]
    assert [label["id"] for label in http.get("/labels").json()["data"]] == [vip["id"], team["id"]]
    for bad in ({}, {"name": ""}, {"name": "x" * 51}, {"name": 3}):
        resp = http.post("/labels", json=bad)
        assert resp.status_code == 400
        assert resp.json()["error"]["code"] in ("missing_required_field", "invalid_field_value")

    ids = [create(http, sb, i)["id"] for i in range(3)]
    bulk = f"{contacts_path(sb)}/bulk_label"
    body = {"contact_ids": [*ids, ids[0], "ctc_UNKNOWN"], "label_id": vip["id"]}
    resp = http.post(bulk, json={**body, "operation": "attach"})
    assert resp.status_code == 200
    assert resp.json()["data"] == {"applied": 3, "skipped_cross_org": 1, "skipped_team_mismatch": 0}
    assert all(c["labels"] == [vip["id"]] for c in sb.contacts())
    resp = http.post(
        bulk, json={"contact_ids": ids[:1], "label_id": vip["id"], "operation": "detach"}
    )
    assert resp.json()["data"]["applied"] == 1
    assert [c["labels"] for c in sb.contacts()] == [[], [vip["id"]], [vip["id"]]]
    resp = http.post(bulk, json={"contact_ids": ids, "label_id": team["id"], "operation": "attach"})
    assert resp.json()["data"] == {"applied": 0, "skipped_cross_org": 0, "skipped_team_mismatch": 3}

    assert_error(
        http.post(bulk, json={"contact_ids": ids, "label_id": "lbl_nope", "operation": "attach"}),
        404,
        "not_found",
        "resource_not_found",
    )
    for bad in (
        {"contact_ids": [], "label_id": vip["id"], "operation": "attach"},
        {"contact_ids": ["x"] * 1001, "label_id": vip["id"], "operation": "attach"},
        {"contact_ids": "x", "label_id": vip["id"], "operation": "attach"},
        {"contact_ids": ids, "label_id": vip["id"], "operation": "toggle"},
    ):
        assert_error(http.post(bulk, json=bad), 400, "invalid_request_error", "invalid_field_value")
    assert_error(
        http.post(bulk, json={"label_id": vip["id"], "operation": "attach"}),
        400,
        "invalid_request_error",
        "missing_required_field",
    )


def test_labels_page_like_contacts() -> None:
    with running(label_page_size=2) as sb, client_for(sb) as http:
        made = [http.post("/labels", json={"name": f"L{i}"}).json()["data"]["id"] for i in range(5)]
        seen: list[str] = []
        pages = 0
        params: dict[str, Any] = {}
        while True:
            body = http.get("/labels", params=params).json()
            pages += 1
            seen += [label["id"] for label in body["data"]]
            assert body["has_more"] == (body["next_cursor"] is not None)
            if not body["has_more"]:
                break
            params = {"cursor": body["next_cursor"]}
        assert (seen, pages) == (made, 3)  # two a page without a limit
        assert [x["id"] for x in http.get("/labels", params={"limit": 100}).json()["data"]] == made
        assert_error(
            http.get("/labels", params={"cursor": "forged"}), 400, "invalid_request_error",
            "invalid_cursor",
        )  # fmt: skip


def test_bulk_label_counts_a_contact_deleted_in_kirim_as_skipped_cross_org(
    sb: Sandbox, http: httpx.Client
) -> None:
    ids = [create(http, sb, i)["id"] for i in range(3)]
    assert sb.delete_contact(ids[1])
    vip = http.post("/labels", json={"name": "VIP"}).json()["data"]
    body = {"contact_ids": ids, "label_id": vip["id"], "operation": "attach"}
    resp = http.post(f"{contacts_path(sb)}/bulk_label", json=body)
    assert resp.json()["data"] == {"applied": 2, "skipped_cross_org": 1, "skipped_team_mismatch": 0}
    assert sb.state.store.label_asks() == dict.fromkeys(ids, 1)  # counted as they arrived


def test_a_label_s_members_are_listed_in_pages_with_cursors_tied_to_the_label(
    sb: Sandbox, http: httpx.Client
) -> None:
    ids = [create(http, sb, i)["id"] for i in range(30)]
    vip = http.post("/labels", json={"name": "VIP"}).json()["data"]
    members = ids[::3]  # 10 of them
    body = {"contact_ids": members, "label_id": vip["id"], "operation": "attach"}
    assert http.post(f"{contacts_path(sb)}/bulk_label", json=body).status_code == 200
    got, pages = walk(http, sb, limit=4, label_id=vip["id"])
    assert (got, pages) == (members, 3)
    first = http.get(contacts_path(sb), params={"limit": 4, "label_id": vip["id"]}).json()
    resp = http.get(contacts_path(sb), params={"limit": 4, "cursor": first["next_cursor"]})
    assert_error(resp, 400, "invalid_request_error", "invalid_cursor")  # another filter's
    resp = http.get(contacts_path(sb), params={"label_id": "lbl_NOPE"})
    assert_error(resp, 404, "not_found", "resource_not_found")
