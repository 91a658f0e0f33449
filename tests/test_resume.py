"""Reruns after a run that could not finish: pending rows are never sent as new.

Kirim is played by a small fake behind httpx's ``transport=`` seam, so a test can decide
exactly which answers get lost; sleeps go through the injected ``sleep``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import httpx

from importer import pipeline
from importer.options import InputOptions, RunOptions
from importer.send.journal import Journal
from importer.send.records import Outcome
from tests.conftest import contacts_file, phone

ORG, ACCOUNT = "org_fake", "1000001"


class FakeKirim:
    """Creates contacts; while ``lose_answers`` is set, every create takes effect but its
    answer is a 502 (the case that makes naive retries create duplicates)."""

    def __init__(self) -> None:
        self.contacts: dict[str, dict[str, object]] = {}
        self.creations: dict[str, int] = {}
        self.keys: dict[str, str] = {}
        self.lose_answers = False
        self.fail_lookups = False
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if path.endswith("/me"):
            return httpx.Response(
                200,
                json={
                    "data": {
                        "organization": {"id": ORG, "name": "Fake"},
                        "rate_limits": {"write_per_minute": 6000, "read_per_minute": 60000},
                    }
                },
            )
        if path.endswith("/accounts"):
            return httpx.Response(
                200,
                json={
                    "data": [
                        {"phone_number_id": ACCOUNT, "phone_number": "+6280", "status": "connected"}
                    ]
                },
            )
        if request.method == "GET" and self.fail_lookups:
            return httpx.Response(503, text="unavailable")
        if request.method == "GET":
            found = self.contacts.get(request.url.params["phone"])
            return httpx.Response(
                200, json={"data": [found] if found else [], "has_more": False, "next_cursor": None}
            )
        body = json.loads(request.content)
        key = request.headers["idempotency-key"]
        if key in self.keys:
            if self.lose_answers:
                return httpx.Response(502, text="bad gateway")
            return httpx.Response(
                201,
                json={"data": self.contacts[self.keys[key]]},
                headers={"Idempotent-Replayed": "true"},
            )
        number = body["phone_number"]
        contact = {"id": f"ctc_{len(self.contacts) + 1}", **body}
        self.contacts[number] = contact
        self.creations[number] = self.creations.get(number, 0) + 1
        self.keys[key] = number
        if self.lose_answers:
            return httpx.Response(502, text="bad gateway")
        return httpx.Response(201, json={"data": contact})


async def _no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def run(
    fake: FakeKirim,
    file: Path,
    tmp: Path,
    mode: str,
    name: str,
    *,
    batch_size: int = 50_000,
    journal_type: type[Journal] = Journal,
) -> tuple[int, dict[str, Any]]:
    options = RunOptions(
        input=InputOptions(path=file, batch_size=batch_size),
        report_dir=tmp / name,
        state=tmp / "j.sqlite",
        base_url="https://api.test/v1",
        api_key="kdv_live_" + "k" * 24,
        on_existing=mode,  # type: ignore[arg-type]
        concurrency=4,
    )
    code = asyncio.run(
        pipeline.run(
            options=options,
            out=io.StringIO(),
            err=io.StringIO(),
            transport=httpx.MockTransport(fake),
            sleep=_no_sleep,
            journal_type=journal_type,
        )
    )
    return code, json.loads((tmp / name / "summary.json").read_text())


def states(tmp: Path, phones: list[str]) -> dict[str, str]:
    journal = Journal(tmp / "j.sqlite", org=ORG, account=ACCOUNT)
    try:
        return {p: e.state for p, e in asyncio.run(journal.entries(phones)).items()}
    finally:
        journal.close()


def test_lost_answers_leave_rows_pending_and_a_rerun_replays_them(tmp_path: Path) -> None:
    fake = FakeKirim()
    fake.lose_answers = True
    file = contacts_file(tmp_path / "in.csv", 5)
    code, first = run(fake, file, tmp_path, "create", "first")
    assert code == 1
    assert first["failed"] == 5  # every answer lost, retries spent
    phones = [phone(i) for i in range(1, 6)]
    assert set(states(tmp_path, phones).values()) == {"pending"}  # never "failed": maybe made
    fake.lose_answers = False
    code, second = run(fake, file, tmp_path, "create", "second")
    assert code == 0
    assert second["created"] == 5
    assert fake.creations == {p: 1 for p in phones}  # replayed, not created again


def test_an_edited_row_that_may_exist_is_looked_up_not_created(tmp_path: Path) -> None:
    fake = FakeKirim()
    fake.lose_answers = True
    run(fake, contacts_file(tmp_path / "in.csv", 3), tmp_path, "create", "first")
    fake.lose_answers = False
    edited = tmp_path / "edited.csv"
    edited.write_text((tmp_path / "in.csv").read_text().replace("Contact", "Kontak"))
    code, second = run(fake, edited, tmp_path, "create", "second")
    assert code == 0
    assert second["exists"] == 3  # another body, another key: only a lookup can tell
    assert fake.creations == {phone(i): 1 for i in range(1, 4)}


def test_skip_mode_looks_up_pending_rows_that_were_never_sent(tmp_path: Path) -> None:
    fake = FakeKirim()
    file = contacts_file(tmp_path / "in.csv", 4)
    run(fake, contacts_file(tmp_path / "one.csv", 1), tmp_path, "skip", "warm")  # journal exists
    # an interrupted run journalled rows 2-4 as pending, then died before sending them;
    # meanwhile somebody else created row 3's contact
    journal = Journal(tmp_path / "j.sqlite", org=ORG, account=ACCOUNT)
    journal.start_run(
        fingerprint=pipeline.fingerprint(
            RunOptions(
                input=InputOptions(path=file),
                report_dir=tmp_path,
                state=tmp_path,
                base_url="",
                api_key="",
                on_existing="skip",
            ),
            ACCOUNT,
        )
    )
    from importer.send.client import idempotency_key
    from importer.send.upsert import make_body

    for i in (2, 3, 4):
        body = make_body(
            phone=phone(i),
            name=f"Contact {i}",
            email=f"c{i}@example.com",
            metadata='{"City":"Jakarta"}',
        )
        key = idempotency_key(account=ACCOUNT, body=body)
        asyncio.run(journal.intend([(phone(i), key, False)]))
    journal.close()
    fake.contacts[phone(3)] = {"id": "ctc_theirs", "phone_number": phone(3)}
    code, rerun = run(fake, file, tmp_path, "skip", "rerun")
    assert code == 0
    assert (rerun["exists"], rerun["created"]) == (2, 2)  # row 1 from the journal, row 3 found
    assert phone(3) not in fake.creations


def test_a_row_edited_twice_after_a_lost_answer_is_still_looked_up(tmp_path: Path) -> None:
    fake = FakeKirim()
    fake.lose_answers = True
    run(fake, contacts_file(tmp_path / "in.csv", 3), tmp_path, "create", "first")  # maybe made
    fake.lose_answers = False
    fake.fail_lookups = True  # the edited rerun journals a new key, but cannot look up
    edited = tmp_path / "edited.csv"
    edited.write_text((tmp_path / "in.csv").read_text().replace("Contact", "Kontak"))
    code, second = run(fake, edited, tmp_path, "create", "second")
    assert (code, second["failed"]) == (1, 3)
    fake.fail_lookups = False
    code, third = run(fake, edited, tmp_path, "create", "third")  # same key as the second
    assert code == 0
    assert third["exists"] == 3
    assert fake.creations == {phone(i): 1 for i in range(1, 4)}


def test_a_pending_row_whose_key_may_have_expired_is_looked_up_first(tmp_path: Path) -> None:
    fake = FakeKirim()
    fake.lose_answers = True
    file = contacts_file(tmp_path / "in.csv", 3)
    run(fake, file, tmp_path, "create", "first")
    fake.lose_answers = False
    fake.keys.clear()  # a day later Kirim has forgotten the keys...
    with sqlite3.connect(tmp_path / "j.sqlite") as db:  # ...and so the journal's entries age
        db.execute("UPDATE contacts SET sent_at = sent_at - 2 * 86400")
    code, second = run(fake, file, tmp_path, "create", "second")
    assert code == 0
    # found by the lookup: made by the first run's creates, whose answers never came, so
    # never reported created until now
    assert (second["created"], second["exists"]) == (3, 0)
    assert fake.creations == {phone(i): 1 for i in range(1, 4)}


class Impatient(Journal):
    """The real journal, waiting 50 ms instead of 5 s for a lock (through the run's seam)."""

    def __init__(self, path: Path, *, org: str, account: str, **seams: Any) -> None:
        super().__init__(path, org=org, account=account, busy_timeout_s=0.05, **seams)


class LocksTheJournal(FakeKirim):
    """After the nth create, another program takes the journal's write lock and keeps it."""

    def __init__(self, journal: Path, n: int) -> None:
        super().__init__()
        self.journal, self.n = journal, n
        self.lock: sqlite3.Connection | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        if request.method == "POST" and len(self.creations) == self.n and self.lock is None:
            self.lock = sqlite3.connect(self.journal, isolation_level=None)
            self.lock.execute("BEGIN EXCLUSIVE")
        return response


def test_a_journal_that_fails_mid_run_stops_it_and_a_rerun_creates_nothing_twice(
    tmp_path: Path,
) -> None:
    fake = LocksTheJournal(tmp_path / "j.sqlite", n=10)
    file = contacts_file(tmp_path / "in.csv", 40)
    # an intent commit every 4 rows
    code, first = run(fake, file, tmp_path, "create", "first", batch_size=4, journal_type=Impatient)
    assert code == 3
    assert f"the journal {tmp_path / 'j.sqlite'}: database is locked" in first["stopped"]
    assert first["rows_total"] == 40
    assert 10 <= first["created"] < 40  # what was answered is reported, the rest not sent
    assert first["created"] + first["failed"] == 40
    assert sum(fake.creations.values()) == first["created"]
    assert fake.lock is not None
    fake.lock.execute("ROLLBACK")
    code, rerun = run(fake, file, tmp_path, "create", "rerun")
    assert code == 0
    assert rerun["failed"] == 0
    assert fake.creations == {phone(i): 1 for i in range(1, 41)}
    fake.lock.close()


def test_a_journal_failure_seen_only_at_the_end_is_reported_and_the_journal_let_go(
    tmp_path: Path,
) -> None:
    fake = LocksTheJournal(tmp_path / "j.sqlite", n=20)  # after the last create
    file = contacts_file(tmp_path / "in.csv", 20)
    code, first = run(fake, file, tmp_path, "create", "first", journal_type=Impatient)
    assert code == 3
    assert first["created"] == 20  # all answered and reported, ...
    assert "database is locked" in first["stopped"]  # ... but not journalled: said so
    assert not [t for t in threading.enumerate() if t.name.startswith("journal")]
    assert fake.lock is not None
    fake.lock.execute("ROLLBACK")
    fake.lock.close()
    assert states(tmp_path, [phone(i) for i in range(1, 21)]) == {
        phone(i): "pending" for i in range(1, 21)
    }


class NumericIds(FakeKirim):
    """A server whose contact ids are JSON numbers, one of them beyond 64 bits."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        if request.method == "POST" and response.status_code == 201:
            number = len(self.creations)
            big = 10**30 if number == 1 else number
            return httpx.Response(
                201, json={"data": {**json.loads(response.content)["data"], "id": big}}
            )
        return response


def test_contact_ids_that_are_not_text_are_reported_and_journalled_as_text(
    tmp_path: Path,
) -> None:
    fake = NumericIds()
    code, summary = run(fake, contacts_file(tmp_path / "in.csv", 3), tmp_path, "create", "r")
    assert (code, summary["created"]) == (0, 3)
    with (tmp_path / "r" / "results.csv").open(encoding="utf-8") as handle:
        ids = [row["contact_id"] for row in csv.DictReader(handle)]
    assert ids == [str(10**30), "2", "3"]


class Answers507(FakeKirim):
    """While ``broken``: creates the contact, then answers 507 (a 5xx that is not retried)."""

    broken = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        if request.method == "POST" and self.broken:
            return httpx.Response(507, text="insufficient storage")
        return response


def test_a_5xx_that_is_not_retried_leaves_the_row_pending_and_a_rerun_creates_nothing_twice(
    tmp_path: Path,
) -> None:
    fake = Answers507()
    file = contacts_file(tmp_path / "in.csv", 3)
    code, first = run(fake, file, tmp_path, "create", "first")
    assert (code, first["failed"]) == (1, 3)
    assert states(tmp_path, [phone(i) for i in range(1, 4)]) == {
        phone(i): "pending" for i in range(1, 4)
    }
    fake.broken = False
    code, rerun = run(fake, file, tmp_path, "create", "rerun")
    assert (code, rerun["failed"]) == (0, 0)
    assert fake.creations == {phone(i): 1 for i in range(1, 4)}


class Broken(Journal):
    """A journal with a bug: recording the 5th outcome raises something no code expects."""

    def __init__(self, path: Path, *, org: str, account: str, **seams: Any) -> None:
        super().__init__(path, org=org, account=account, **seams)
        self.recorded = 0

    def record(self, outcome: Outcome) -> None:
        self.recorded += 1
        if self.recorded == 5:
            raise RuntimeError("a bug in the journal")
        super().record(outcome)


def test_an_unexpected_error_in_a_worker_stops_the_run_cleanly_and_reports_every_row(
    tmp_path: Path,
) -> None:
    fake = FakeKirim()
    file = contacts_file(tmp_path / "in.csv", 30)
    code, first = run(fake, file, tmp_path, "create", "first", journal_type=Broken)
    assert code == 3  # no hang, no traceback: a stop like any other
    assert "internal error: RuntimeError: a bug in the journal" in first["stopped"]
    assert first["rows_total"] == 30
    assert first["reasons"].get("internal_error") == 1
    code, _ = run(fake, file, tmp_path, "create", "rerun")
    assert code == 0
    assert fake.creations == {phone(i): 1 for i in range(1, 31)}  # nothing doubled
