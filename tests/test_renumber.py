"""Renumbering is never silent (issue 18, item 5), through ``main(argv)`` against the sandbox.

A file of Indonesian national numbers (``0812...``) imported under ``--default-region ID``, then
run again under ``DE``, where the same cells read as German fixed lines: the run refuses before
it sends or journals anything (exit 2, counted at the sandbox's store), saying how many rows
and which; ``--allow-renumber`` sends the new numbers; ``plan`` shows the count.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from importer.cli import main
from importer.options import InputOptions
from importer.sandbox import Sandbox
from importer.send.journal import cells_read_otherwise
from importer.send.renumber import reading
from tests.conftest import phone, write_contacts
from tests.test_run import results, summary

NATIONAL = 6  # rows whose cell is a national number: read as another under DE
PLUS = 4  # rows written with +62: the same under any region


def export(path: Path) -> Path:
    rows = [
        {"Phone": f"0812-{i:04d}-{i:04d}", "Name": f"National {i}", "City": "Bogor"}
        for i in range(1, NATIONAL + 1)
    ]
    rows += [
        {"Phone": phone(100 + i), "Name": f"Plus {i}", "City": "Depok"} for i in range(1, PLUS + 1)
    ]
    return write_contacts(path, rows)


def german(i: int) -> str:
    return f"+49812{i:04d}{i:04d}"


def indonesian(i: int) -> str:
    return f"+62812{i:04d}{i:04d}"


def run(box: Sandbox, file: Path, tmp: Path, name: str, region: str, *extra: str) -> int:
    argv = ["run", str(file), "--base-url", box.base_url, "--report-dir", str(tmp / name),
            "--state", str(tmp / "journal.sqlite"), "--default-region", region, *extra]  # fmt: skip
    return main(argv)


def journal_rows(tmp: Path) -> tuple[int, list[tuple[str, ...]], dict[str, str]]:
    """(runs, contacts, cell -> phone) as the journal holds them."""
    with sqlite3.connect(tmp / "journal.sqlite") as db:
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        contacts = db.execute("SELECT phone, state, idem_key FROM contacts ORDER BY phone")
        cells = dict(db.execute("SELECT cell, phone FROM cells").fetchall())
        return int(runs), contacts.fetchall(), cells


@pytest.fixture
def imported(box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The export, imported once under ``--default-region ID`` (journal ``journal.sqlite``)."""
    file = export(tmp_path / "pelanggan.csv")
    assert run(box, file, tmp_path, "first", "ID") == 0
    assert summary(tmp_path / "first")["created"] == NATIONAL + PLUS
    capsys.readouterr()
    return file


def requests(box: Sandbox) -> Counter[tuple[str, str]]:
    return Counter({(r["method"], r["route"]): r["count"] for r in box.stats()["requests"]})


def test_a_changed_default_region_is_refused_before_anything_is_sent(
    box: Sandbox, imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before_journal, before_requests = journal_rows(tmp_path), requests(box)
    assert run(box, imported, tmp_path, "second", "DE") == 2
    err = capsys.readouterr().err
    assert f"{NATIONAL} rows read as another number" in err
    assert "row 1: 0812…01 -> +628…01 -> +498…01" in err  # masked as the log masks phones
    assert "row 5: 0812…05 -> +628…05 -> +498…05" in err
    assert "row 6:" not in err  # a few examples, not every row
    assert "--allow-renumber" in err
    assert "Nothing was sent." in err
    assert indonesian(1) not in err
    assert german(1) not in err
    # nothing created, nothing written: not a contact request, not a journal row
    assert box.creations_by_phone() == {
        **{indonesian(i): 1 for i in range(1, NATIONAL + 1)},
        **{phone(100 + i): 1 for i in range(1, PLUS + 1)},
    }
    sent = requests(box) - before_requests
    assert set(sent) == {("GET", "/v1/me"), ("GET", "/v1/accounts")}
    assert journal_rows(tmp_path) == before_journal


def test_verbose_shows_the_numbers_whole(
    box: Sandbox, imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(box, imported, tmp_path, "second", "DE", "-v") == 2
    assert f"row 2: 0812-0002-0002 -> {indonesian(2)} -> {german(2)}" in capsys.readouterr().err


def test_allow_renumber_sends_the_new_numbers_and_the_journal_follows(
    box: Sandbox, imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = imported
    assert run(box, file, tmp_path, "second", "DE", "--allow-renumber") == 0
    out = capsys.readouterr().out
    assert f"Renumbered (--allow-renumber): {NATIONAL} rows go as new numbers" in out
    assert f"renumbered {NATIONAL} (the journal knew" in out  # the closing lines
    second = summary(tmp_path / "second")
    assert (second["created"], second["exists"]) == (NATIONAL, PLUS)
    assert second["renumbered"] == NATIONAL
    assert second["renumbered_examples"][0] == "row 1: 0812…01 -> +628…01 -> +498…01"
    by_row = {r["row_number"]: r for r in results(tmp_path / "second")}
    assert by_row["1"]["phone_number"] == german(1)
    # both numbers exist now, each once: the old contacts stay in Kirim
    created = box.creations_by_phone()
    assert {german(i) for i in range(1, NATIONAL + 1)} <= set(created)
    assert set(created.values()) == {1}
    _, _, cells = journal_rows(tmp_path)
    assert cells["081200010001"] == german(1)  # the cell, its separators dropped
    assert cells[phone(101)] == phone(101)

    # under DE from now on: nothing to compare, nothing refused
    assert run(box, file, tmp_path, "third", "DE") == 0
    assert summary(tmp_path / "third")["renumbered"] == 0
    # and going back to ID is a renumbering too
    assert run(box, file, tmp_path, "fourth", "ID") == 2
    assert f"{NATIONAL} rows read as another number" in capsys.readouterr().err


def test_plan_counts_the_rows_a_run_would_refuse(
    box: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = export(tmp_path / "pelanggan.csv")
    reports = tmp_path / "reports"  # the run's default journal: reports/kirim-journal.sqlite
    argv = ["run", str(file), "--base-url", box.base_url, "--default-region", "ID"]
    assert main([*argv, "--report-dir", str(reports / "first")]) == 0
    capsys.readouterr()

    plan = ["plan", str(file), "--default-region", "DE", "--report-dir", str(reports / "plan")]
    assert main(plan) == 0  # found there without --state
    out = capsys.readouterr().out
    assert f"renumbered {NATIONAL} (the journal knows their phone cell under another" in out
    assert "row 1: 0812…01 -> +628…01 -> +498…01" in out
    planned = summary(reports / "plan")
    assert planned["renumbered"] == NATIONAL
    assert len(planned["renumbered_examples"]) == 5

    same = ["plan", str(file), "--default-region", "ID", "--report-dir", str(tmp_path / "p2"),
            "--state", str(reports / "kirim-journal.sqlite")]  # fmt: skip
    assert main(same) == 0
    assert summary(tmp_path / "p2")["renumbered"] == 0
    assert "renumbered" not in capsys.readouterr().out

    journal = str(reports / "kirim-journal.sqlite")
    verbose = ["plan", str(file), "--default-region", "DE", "-v",
               "--report-dir", str(tmp_path / "p3"), "--state", journal]  # fmt: skip
    assert main(verbose) == 0
    assert f"row 1: 0812-0001-0001 -> {indonesian(1)} -> {german(1)}" in capsys.readouterr().out


def test_a_journal_from_before_the_cells_table_gains_it_and_learns_its_rows(
    box: Sandbox, imported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = imported
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:  # what 0.3.0 left
        db.execute("DROP TABLE cells")
    plan = ["plan", str(file), "--default-region", "DE", "--report-dir", str(tmp_path / "p"),
            "--state", str(tmp_path / "journal.sqlite")]  # fmt: skip
    assert main(plan) == 0
    assert summary(tmp_path / "p")["renumbered"] == 0  # nothing known yet, nothing to say

    assert run(box, file, tmp_path, "second", "ID") == 0  # every row exists: settled, no request
    assert summary(tmp_path / "second")["exists"] == NATIONAL + PLUS
    _, _, cells = journal_rows(tmp_path)
    assert len(cells) == NATIONAL + PLUS  # learnt from the rows the journal holds done
    capsys.readouterr()
    assert run(box, file, tmp_path, "third", "DE") == 2
    assert f"{NATIONAL} rows read as another number" in capsys.readouterr().err


def test_a_stable_journal_has_no_cell_to_compare(imported: Path, tmp_path: Path) -> None:
    """Cells read as the run reads them cannot read differently: no second pass is made."""
    file = imported
    journal = tmp_path / "journal.sqlite"
    with sqlite3.connect(journal) as db:
        org, account = db.execute("SELECT org, account FROM runs").fetchone()
    same = reading(InputOptions(path=file, default_region="ID"))
    other = reading(InputOptions(path=file, default_region="DE"))
    assert cells_read_otherwise(journal, reading=same, org=org, account=account) == []
    assert len(cells_read_otherwise(journal, reading=other, org=org, account=account)) == 10
    assert cells_read_otherwise(journal, reading=other, org="org_other", account=account) == []
    assert cells_read_otherwise(tmp_path / "none.sqlite", reading=other) == []
