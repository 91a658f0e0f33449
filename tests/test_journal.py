"""The SQLite journal: real files, reopened as a rerun would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from importer.journal import Entry, Journal, Outcome


def intend(journal: Journal, items: Iterable[tuple[str, str]]) -> None:
    asyncio.run(journal.intend(items))


def entries(journal: Journal, phones: list[str]) -> dict[str, Entry]:
    return asyncio.run(journal.entries(phones))


def open_journal(
    path: Path, *, org: str = "org_a", account: str = "1000001", now: list[float] | None = None
) -> Journal:
    clock = now or [1_000.0]
    return Journal(path, org=org, account=account, clock=lambda: clock[0])


def test_intent_is_durable_before_any_outcome(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k1"), ("+6282", "k2")])
    # a crash here: nothing closed, nothing flushed
    other = open_journal(db)
    found = entries(other, ["+6281", "+6282", "+6283"])
    assert {p: e.state for p, e in found.items()} == {"+6281": "pending", "+6282": "pending"}
    assert found["+6281"].idem_key == "k1"


def test_outcomes_are_batched_and_flushed_on_close(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    intend(j, [("+6281", "k1")])
    j.record(Outcome("+6281", "done", "created", contact_id="ctc_1"))
    assert entries(open_journal(db), ["+6281"])["+6281"].state == "pending"  # not yet flushed
    j.close()
    entry = entries(open_journal(db), ["+6281"])["+6281"]
    assert (entry.state, entry.outcome, entry.contact_id) == ("done", "created", "ctc_1")


def test_an_unfinished_run_is_resumed_and_a_finished_one_is_not(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    first = open_journal(db)
    run = first.start_run(fingerprint="f")
    first.close()
    again = open_journal(db)
    assert again.start_run(fingerprint="f") == run
    assert again.resumed
    again.finish_run()
    again.close()
    third = open_journal(db)
    assert third.start_run(fingerprint="f") != run
    assert not third.resumed


def test_entries_are_scoped_by_organisation_and_account(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    a = open_journal(db, org="org_a", account="1000001")
    a.start_run(fingerprint="f")
    intend(a, [("+6281", "k")])
    a.close()
    assert entries(open_journal(db, org="org_b", account="1000001"), ["+6281"]) == {}
    assert entries(open_journal(db, org="org_a", account="1000002"), ["+6281"]) == {}
    assert entries(open_journal(db, org="org_a", account="1000001"), ["+6281"]) != {}


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


def test_many_phones_are_looked_up_in_chunks(tmp_path: Path) -> None:
    j = open_journal(tmp_path / "j.sqlite")
    j.start_run(fingerprint="f")
    phones = [f"+62812{i:07d}" for i in range(1_234)]
    intend(j, [(p, "k" + p) for p in phones])
    assert len(entries(j, phones)) == 1_234
