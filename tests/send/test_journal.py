"""The SQLite journal: real files, reopened as a rerun would."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pytest

from importer.errors import JournalError
from importer.send.journal import Journal, finish_run
from importer.send.records import Entry, Outcome


def intend(journal: Journal, items: Iterable[tuple[str, str]], *, create: bool = False) -> None:
    asyncio.run(journal.intend((phone, key, create) for phone, key in items))


def entries(journal: Journal, phones: list[str]) -> dict[str, Entry]:
    return asyncio.run(journal.entries(phones))


def open_journal(
    path: Path, *, org: str = "org_a", account: str = "1000001", now: list[float] | None = None
) -> Journal:
    clock = now or [1_000.0]
    return Journal(path, org=org, account=account, clock=lambda: clock[0])


def entries_in(db: Path, phones: list[str], **scope: str) -> dict[str, Entry]:
    """What a rerun would read: the journal opened, read and closed again."""
    journal = open_journal(db, **scope)
    try:
        return entries(journal, phones)
    finally:
        journal.close()


def test_intent_is_durable_before_any_outcome(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k1"), ("+6282", "k2")])
    # a crash here: nothing closed, nothing flushed
    found = entries_in(db, ["+6281", "+6282", "+6283"])
    assert {p: e.state for p, e in found.items()} == {"+6281": "pending", "+6282": "pending"}
    assert found["+6281"].idem_key == "k1"
    j.close()


def test_outcomes_are_batched_and_flushed_on_close(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k1")])
    j.record(Outcome("+6281", "done", "created", contact_id="ctc_1"))
    assert entries_in(db, ["+6281"])["+6281"].state == "pending"  # not yet flushed
    j.close()
    entry = entries_in(db, ["+6281"])["+6281"]
    assert (entry.state, entry.outcome, entry.contact_id) == ("done", "created", "ctc_1")


def test_an_unfinished_run_is_resumed_and_a_finished_one_is_not(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    first = open_journal(db)
    run = first.start_run(fingerprint="f")
    first.close()
    again = open_journal(db)
    assert again.start_run(fingerprint="f") == run
    assert again.resumed
    again.close()
    finish_run(db, run_id=run)
    third = open_journal(db)
    assert third.start_run(fingerprint="f") != run
    assert not third.resumed
    third.close()


def test_entries_are_scoped_by_organisation_and_account(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    a = open_journal(db, org="org_a", account="1000001")
    a.start_run(fingerprint="f")
    intend(a, [("+6281", "k")])
    a.close()
    assert entries_in(db, ["+6281"], org="org_b", account="1000001") == {}
    assert entries_in(db, ["+6281"], org="org_a", account="1000002") == {}
    assert entries_in(db, ["+6281"], org="org_a", account="1000001") != {}


def test_a_repeated_intent_with_the_same_key_keeps_its_first_send_time(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    now = [1_000.0]
    j = open_journal(db, now=now)
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k")])
    now[0] = 50_000.0
    intend(j, [("+6281", "k")])
    assert entries(j, ["+6281"])["+6281"].sent_at == 1_000.0
    intend(j, [("+6281", "other-key")])
    assert entries(j, ["+6281"])["+6281"].sent_at == 50_000.0
    j.close()


def test_many_phones_are_looked_up_in_chunks(tmp_path: Path) -> None:
    """More phones than one statement may bind (SQLite's limit on this build, whatever it
    is): without chunks, the lookup fails."""
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    j = open_journal(tmp_path / "j.sqlite")
    j.start_run(fingerprint="f")
    phones = [f"+62812{i:08d}" for i in range(limit + 1)]
    intend(j, [(p, "k") for p in phones[:3]])
    found = entries(j, phones)
    assert sorted(found) == phones[:3]
    j.close()


def test_an_outcome_is_seen_by_the_next_lookup_even_before_its_batch_is_written(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path / "j.sqlite", org="org_a", account="1000001", flush_every=10_000)
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k1"), ("+6282", "k2")])
    j.record(Outcome("+6281", "done", "created", contact_id="ctc_1"))
    assert entries_in(tmp_path / "j.sqlite", ["+6281"])["+6281"].state == "pending"  # buffered
    assert entries(j, ["+6281"])["+6281"].state == "done"  # the lookup wrote it first
    j.record(Outcome("+6282", "failed", None, http_status=422))
    j.flush()
    assert entries(j, ["+6282"])["+6282"].state == "failed"
    j.close()


def test_a_failure_is_final_and_says_which_journal(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    told: list[str] = []
    j = Journal(db, org="org_a", account="1000001", busy_timeout_s=0.05, on_failure=told.append)
    j.start_run(fingerprint="f")
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    with pytest.raises(JournalError, match=f"the journal {re.escape(str(db))}: database is locked"):
        intend(j, [("+6281", "k1")])
    assert len(told) == 1  # the run's stop hears of it once
    assert "database is locked" in told[0]
    with pytest.raises(JournalError):  # a read would work, but nothing is trusted to it now
        entries(j, ["+6281"])
    lock.execute("ROLLBACK")
    lock.close()
    with pytest.raises(JournalError):
        j.close()
    j.close()  # once closed, closed
    assert entries_in(db, ["+6281"]) == {}  # the failed intent left nothing


def test_a_value_sqlite_cannot_store_fails_the_journal_not_the_run(tmp_path: Path) -> None:
    j = open_journal(tmp_path / "j.sqlite")
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k1")])
    j.record(Outcome("+6281", "done", "created", http_status=2**70))  # too big for SQLite
    with pytest.raises(JournalError, match="OverflowError"):
        j.close()
    assert entries_in(tmp_path / "j.sqlite", ["+6281"])["+6281"].state == "pending"


def test_a_journal_from_before_the_rowid_layout_still_works(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    with sqlite3.connect(db) as old:  # 0.1.0's table: WITHOUT ROWID, no needs_lookup column
        old.executescript(
            "CREATE TABLE contacts (org TEXT NOT NULL, account TEXT NOT NULL,"
            " phone TEXT NOT NULL, state TEXT NOT NULL, idem_key TEXT NOT NULL,"
            " sent_at REAL NOT NULL, run_id INTEGER NOT NULL, outcome TEXT, contact_id TEXT,"
            " http_status INTEGER, error_code TEXT, request_id TEXT, updated_at REAL NOT NULL,"
            " PRIMARY KEY (org, account, phone)) WITHOUT ROWID;"
            "INSERT INTO contacts VALUES ('org_a', '1000001', '+6281', 'done', 'k1', 1, 1,"
            " 'created', 'ctc_1', 201, NULL, NULL, 1);"
        )
    old.close()
    j = open_journal(db)
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k2"), ("+6282", "k2")])  # +6281 again, under another key
    j.record(Outcome("+6282", "done", "created", contact_id="ctc_2"))
    j.close()
    found = entries_in(db, ["+6281", "+6282"])
    assert (found["+6281"].state, found["+6281"].needs_lookup) == ("pending", True)
    assert (found["+6282"].state, found["+6282"].contact_id) == ("done", "ctc_2")


def test_a_contact_deleted_in_kirim_is_no_longer_claimed_and_is_looked_up_next(
    tmp_path: Path,
) -> None:
    from importer.send.decide import Action, decide

    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    run = j.start_run(fingerprint="f")
    intend(j, [("+6281", "k1"), ("+6282", "k2")])
    for phone in ("+6281", "+6282"):  # buffered, not yet written
        j.record(Outcome(phone, "done", "created", contact_id=f"ctc_{phone}", body_hash="h"))
    asyncio.run(j.labelled([("+6281", frozenset({"lbl_1"})), ("+6282", frozenset({"lbl_1"}))]))
    asyncio.run(j.deleted_in_kirim(["+6282"]))
    j.close()
    found = entries_in(db, ["+6281", "+6282"])
    assert (found["+6281"].state, found["+6281"].labels) == ("done", frozenset({"lbl_1"}))
    gone = found["+6282"]
    assert (gone.state, gone.needs_lookup, gone.contact_id, gone.outcome) == (
        "pending", True, None, None,
    )  # fmt: skip
    assert (gone.body_hash, gone.labels) == (None, frozenset())
    for mode in ("skip", "update", "create"):  # the next run looks the phone up, whatever mode
        decision = decide(entry=gone, key="k2", body_hash="h", mode=mode, now=1_000.0, run_id=run)
        assert decision.action is Action.LOOKUP
