"""``kirim-import run`` end to end: real files, real HTTP over loopback to the sandbox."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from importer.cli import main
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import contacts_file, phone

KEY_ENV = "KIRIM_API_KEY"


def run(box: Sandbox, file: Path, tmp: Path, *extra: str, name: str = "r") -> tuple[int, Path]:
    reports = tmp / name
    code = main(
        [
            "run",
            str(file),
            "--base-url",
            box.base_url,
            "--report-dir",
            str(reports),
            "--state",
            str(tmp / "journal.sqlite"),
            "--default-region",
            "ID",
            *extra,
        ]
    )
    return code, reports


def results(reports: Path) -> list[dict[str, str]]:
    with (reports / "results.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def summary(reports: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reports / "summary.json").read_text())
    return data


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    monkeypatch.setenv(KEY_ENV, sandbox.token)


def test_imports_every_valid_row_once_and_reports_every_row(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = contacts_file(tmp_path / "in.csv", 40, invalid=3, duplicates=2)
    code, reports = run(sandbox, file, tmp_path)
    assert code == 1  # three invalid rows
    rows = results(reports)
    assert [int(r["row_number"]) for r in rows] == list(range(1, 46))
    assert [r["status"] for r in rows] == ["created"] * 40 + ["invalid"] * 3 + [
        "duplicate_in_file"
    ] * 2
    assert all(r["contact_id"].startswith("ctc_") for r in rows[:40])
    assert sandbox.creations_by_phone() == {phone(i): 1 for i in range(1, 41)}
    s = summary(reports)
    assert (
        s["rows_total"],
        s["created"],
        s["invalid"],
        s["duplicate_in_file"],
        s["failed"],
        s["exit_code"],
    ) == (45, 40, 3, 2, 0, 1)
    assert (
        s["created"]
        + s["updated"]
        + s["exists"]
        + s["duplicate_in_file"]
        + s["invalid"]
        + s["failed"]
        == s["rows_total"]
    )
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1] == f"Reports: {reports}"


def test_a_rerun_creates_nothing_and_spends_no_writes(sandbox: Sandbox, tmp_path: Path) -> None:
    file = contacts_file(tmp_path / "in.csv", 25)
    assert run(sandbox, file, tmp_path, name="first")[0] == 0
    posts = sandbox.request_count("POST", "/v1/{phone_number_id}/contacts")
    gets = sandbox.request_count("GET", "/v1/{phone_number_id}/contacts")
    code, reports = run(sandbox, file, tmp_path, name="second")
    assert code == 0
    assert {r["status"] for r in results(reports)} == {"exists"}
    assert sandbox.request_count("POST", "/v1/{phone_number_id}/contacts") == posts
    assert sandbox.request_count("GET", "/v1/{phone_number_id}/contacts") == gets  # journal only
    assert sum(sandbox.creations_by_phone().values()) == 25


@pytest.mark.parametrize(
    "config",
    [
        SandboxConfig(seed=11, fault_rate=0.3),
        SandboxConfig(seed=12, ambiguous_rate=0.3),
        SandboxConfig(seed=13, fault_rate=0.15, ambiguous_rate=0.15, latency_ms=(0.0, 5.0)),
    ],
    ids=["faults", "ambiguous", "both"],
)
def test_faults_never_double_or_lose_a_contact(
    config: SandboxConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(config) as box:
        monkeypatch.setenv(KEY_ENV, box.token)
        file = contacts_file(tmp_path / "in.csv", 60)
        code, reports = run(box, file, tmp_path, "--on-existing", "create")
        rows = results(reports)
        assert code == 0, [r for r in rows if r["status"] != "created"]
        assert [r["status"] for r in rows] == ["created"] * 60
        assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 61)}
        assert len(box.contacts()) == 60
        assert summary(reports)["retries"] > 0


def spend_write_budget(box: Sandbox, stop: threading.Event | None = None) -> int:
    """Another integration of the organisation: spends write tokens until the bucket is empty
    (or, given ``stop``, as fast as it can until it is set). Returns how many it sent."""
    import httpx

    sent = 0
    with httpx.Client(
        base_url=box.base_url + "/", headers={"Authorization": f"Bearer {box.token}"}
    ) as other:
        for i in range(20_000):  # bounded, however slow this machine
            sent += 1
            status = other.post("labels", json={"name": f"l{i}"}).status_code
            if stop is None and status == 429:
                break
            if stop is not None and stop.is_set():
                break
    return sent


def test_a_budget_already_spent_by_others_is_respected_from_the_first_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(SandboxConfig(seed=3, write_per_minute=1200)) as box:
        monkeypatch.setenv(KEY_ENV, box.token)
        spend_write_budget(box)
        file = contacts_file(tmp_path / "in.csv", 30)
        code, reports = run(box, file, tmp_path, "--on-existing", "create")
        assert code == 0
        assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 31)}
        s = summary(reports)
        assert s["http_429"] <= 1  # the first answer's X-RateLimit-Remaining set the pace
        assert s["created"] == 30


def test_a_429_storm_from_a_shared_budget_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(SandboxConfig(seed=3, write_per_minute=1200)) as box:
        monkeypatch.setenv(KEY_ENV, box.token)
        spend_write_budget(box)
        stop = threading.Event()
        other = threading.Thread(target=spend_write_budget, args=(box, stop))
        other.start()  # takes every token it can for the first second of our import
        threading.Timer(1.0, stop.set).start()
        try:
            file = contacts_file(tmp_path / "in.csv", 30)
            code, reports = run(box, file, tmp_path, "--on-existing", "create")
        finally:
            stop.set()
            other.join()
        assert code == 0
        assert box.creations_by_phone() == {phone(i): 1 for i in range(1, 31)}
        s = summary(reports)
        assert s["http_429"] >= 1
        assert s["created"] == 30


def test_limit_sends_a_canary_and_failures_csv_finishes_the_job(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    file = contacts_file(tmp_path / "in.csv", 10, invalid=1)
    code, first = run(sandbox, file, tmp_path, "--limit", "3", name="canary")
    assert code == 1  # the invalid row; rows held back by --limit are not an error
    statuses = [r["status"] for r in results(first)]
    assert statuses == ["created"] * 3 + ["failed"] * 7 + ["invalid"]
    assert len(sandbox.creations_by_phone()) == 3
    with (first / "failures.csv").open(encoding="utf-8") as handle:
        failures = list(csv.DictReader(handle))
    assert [f["error_code"] for f in failures] == ["limit_reached"] * 7 + ["too_short"]
    assert list(failures[0])[:4] == ["Phone", "Name", "Email", "City"]
    code, second = run(sandbox, first / "failures.csv", tmp_path, name="rest")
    assert code == 1  # the invalid row is still invalid
    assert [r["status"] for r in results(second)] == ["created"] * 7 + ["invalid"]
    assert sandbox.creations_by_phone() == {phone(i): 1 for i in range(1, 11)}
    contact = next(c for c in sandbox.contacts() if c["phone_number"] == phone(9))
    assert contact["metadata"] == {"City": "Jakarta"}  # report columns are not metadata
    # every retry's results name the rows of the FIRST file, however many retries deep
    assert [r["source_row"] for r in results(first)] == [str(i) for i in range(1, 12)]
    assert [r["source_row"] for r in results(second)] == [str(i) for i in range(4, 12)]
    code, third = run(sandbox, second / "failures.csv", tmp_path, name="again")
    assert code == 1
    assert [(r["row_number"], r["source_row"], r["status"]) for r in results(third)] == [
        ("1", "11", "invalid")
    ]
    with (third / "failures.csv").open(encoding="utf-8") as handle:
        assert next(csv.reader(handle))[:5] == ["Phone", "Name", "Email", "City", "source_row"]


def test_on_existing_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    with Sandbox(SandboxConfig(seed=5, on_duplicate_phone="conflict")) as box:
        monkeypatch.setenv(KEY_ENV, box.token)
        with httpx.Client(
            base_url=box.base_url + "/", headers={"Authorization": f"Bearer {box.token}"}
        ) as api:
            for i in (1, 2):
                api.post(
                    f"{box.account_id}/contacts",
                    json={
                        "phone_number": phone(i),
                        "name": f"Contact {i}",
                        "email": f"c{i}@example.com",
                        "metadata": {"City": "Jakarta"},
                    },
                )
            api.post(f"{box.account_id}/contacts", json={"phone_number": phone(3), "name": "Old"})
        file = contacts_file(tmp_path / "in.csv", 4)
        code, skip = run(box, file, tmp_path, "--on-existing", "skip", name="skip")
        assert [r["status"] for r in results(skip)] == ["exists", "exists", "exists", "created"]
        file2 = contacts_file(tmp_path / "in2.csv", 5)
        code, upd = run(box, file2, tmp_path, "--on-existing", "update", name="update")
        assert code == 0
        # rows 1-2 were found holding this very body, so the journal kept its fingerprint:
        # unchanged, no request; row 3 was found with another body: looked up again and
        # updated; row 4 was created with this very body: unchanged; row 5 is new
        assert [r["status"] for r in results(upd)] == [
            "unchanged",
            "unchanged",
            "updated",
            "unchanged",
            "created",
        ]
        assert sum(box.creations_by_phone().values()) == 5


def test_update_mode_patches_what_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    with Sandbox(SandboxConfig(seed=6)) as box:
        monkeypatch.setenv(KEY_ENV, box.token)
        with httpx.Client(
            base_url=box.base_url + "/", headers={"Authorization": f"Bearer {box.token}"}
        ) as api:
            api.post(f"{box.account_id}/contacts", json={"phone_number": phone(1), "name": "Old"})
            api.post(
                f"{box.account_id}/contacts",
                json={
                    "phone_number": phone(2),
                    "name": "Contact 2",
                    "email": "c2@example.com",
                    "metadata": {"City": "Jakarta"},
                },
            )
        file = contacts_file(tmp_path / "in.csv", 3)
        code, reports = run(box, file, tmp_path, "--on-existing", "update")
        assert code == 0
        assert [r["status"] for r in results(reports)] == ["updated", "exists", "created"]
        one = next(c for c in box.contacts() if c["phone_number"] == phone(1))
        assert one["name"] == "Contact 1"
        assert sum(box.creations_by_phone().values()) == 3


def test_create_mode_treats_a_409_conflict_as_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    with Sandbox(SandboxConfig(seed=8, on_duplicate_phone="conflict")) as box:
        monkeypatch.setenv(KEY_ENV, box.token)
        with httpx.Client(
            base_url=box.base_url + "/", headers={"Authorization": f"Bearer {box.token}"}
        ) as api:
            api.post(f"{box.account_id}/contacts", json={"phone_number": phone(2), "name": "X"})
        file = contacts_file(tmp_path / "in.csv", 3)
        code, reports = run(box, file, tmp_path, "--on-existing", "create")
        assert code == 0
        rows = results(reports)
        assert [r["status"] for r in rows] == ["created", "exists", "created"]
        assert rows[1]["http_status"] == "409"
        assert box.request_count("GET", "/v1/{phone_number_id}/contacts") == 0


def test_sandbox_flag_imports_into_a_fresh_embedded_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)  # --sandbox needs no key
    file = contacts_file(tmp_path / "in.csv", 5, duplicates=1)
    reports = tmp_path / "r"
    code = main(
        ["run", str(file), "--sandbox", "--default-region", "ID", "--report-dir", str(reports)]
    )
    assert code == 0
    assert [r["status"] for r in results(reports)] == ["created"] * 5 + ["duplicate_in_file"]
    assert (reports / "journal.sqlite").exists()  # its own journal, not the shared one
    out = capsys.readouterr().out
    assert "Sandbox: a fresh Kirim-compatible server at http://127.0.0.1:" in out
