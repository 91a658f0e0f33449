"""The journal's ``cells``: which number each phone cell was sent as, and how it was read
(``send.renumber``); real files, reopened as a rerun or a plan would."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from importer.send.journal import Journal, cells_read_otherwise


def open_journal(path: Path, *, reading: str = "ID", org: str = "org_a") -> Journal:
    return Journal(path, org=org, account="1000001", clock=lambda: 1_000.0, reading=reading)


def held(path: Path, *, reading: str = "none", org: str | None = None) -> set[tuple[str, str]]:
    """The (cell, phone) pairs held under any reading but ``reading``."""
    account = None if org is None else "1000001"
    return set(cells_read_otherwise(path, reading=reading, org=org, account=account))


def test_the_cells_of_an_intent_are_durable_with_it(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    asyncio.run(j.intend([("+6281200000001", "k1", False)], [("081200000001", "+6281200000001")]))
    # a crash here: nothing closed, nothing flushed
    assert held(db) == {("081200000001", "+6281200000001")}
    assert held(db, reading="ID") == set()  # read as this run reads: nothing to compare
    j.close()


def test_remembered_cells_are_written_in_batches_and_on_close(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    j.remember([("081200000002", "+6281200000002")])
    assert held(db) == set()  # buffered
    j.close()
    assert held(db) == {("081200000002", "+6281200000002")}


def test_a_cell_follows_its_latest_number_and_reading(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    for reading, number in (("ID", "+6281200000003"), ("DE", "+4981200000003")):
        j = open_journal(db, reading=reading)
        j.start_run(fingerprint=reading)
        j.remember([("081200000003", number)])
        j.close()
    assert held(db, reading="ID") == {("081200000003", "+4981200000003")}
    assert held(db, reading="DE") == set()


def test_organisations_keep_their_own_cells(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    for org, number in (("org_a", "+6281200000004"), ("org_b", "+4981200000004")):
        j = open_journal(db, org=org, reading=org)
        j.start_run(fingerprint=org)
        j.remember([("081200000004", number)])
        j.close()
    assert held(db, reading="x", org="org_a") == {("081200000004", "+6281200000004")}
    assert held(db, reading="x", org="org_b") == {("081200000004", "+4981200000004")}
    assert len(held(db, reading="x")) == 2  # a plan, knowing no organisation: every one's


def test_a_journal_from_before_cells_gains_the_table(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    j.close()
    with sqlite3.connect(db) as old:  # what 0.3.0 wrote: no cells table
        old.execute("DROP TABLE cells")
    assert held(db) == set()  # read only: nothing known, nothing changed
    with sqlite3.connect(db) as look:
        assert look.execute("SELECT name FROM sqlite_master WHERE name='cells'").fetchall() == []
    j = open_journal(db)
    j.start_run(fingerprint="f")
    j.remember([("081200000005", "+6281200000005")])
    j.close()
    assert held(db) == {("081200000005", "+6281200000005")}


def test_no_journal_holds_no_cells(tmp_path: Path) -> None:
    assert held(tmp_path / "none.sqlite") == set()
    assert not (tmp_path / "none.sqlite").exists()  # and none is made


def test_cells_come_back_exactly_as_noted(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    odd = ["tel:+62 812-3456", 'wa.me/"62812"\\x', "٠٨١٢٣٤٥٦٧٨٩", "0812\u00a03456\u2009789", "00"]
    j = open_journal(db)
    j.start_run(fingerprint="f")
    j.remember((cell, f"+6281200000{i}") for i, cell in enumerate(odd))
    j.close()
    assert held(db) == {(cell, f"+6281200000{i}") for i, cell in enumerate(odd)}


def test_remembered_cells_go_out_behind_a_lookup_of_entries(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = open_journal(db)
    j.start_run(fingerprint="f")
    many = [(f"0812{i:08d}", f"+62812{i:08d}") for i in range(2_000)]
    j.remember(many)
    assert held(db) == set()

    async def look() -> None:
        await j.entries(["+6281200000001"])  # queues the cells behind itself...
        await j.entries(["+6281200000002"])  # ...which are written before this one answers

    asyncio.run(look())
    assert held(db) == set(many)
    j.close()
