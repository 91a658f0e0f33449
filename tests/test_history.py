"""``kirim-import history`` through ``main(argv)``: runs that finished, failed rows, stopped,
resumed, and a journal written by 0.2.0 (which kept no record of its runs)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from importer.cli import main
from importer.sandbox import Sandbox
from tests.conftest import phone, write_contacts

# The journal as 0.2.0 wrote it: its runs table has no record of how a run ended.
SCHEMA_0_2_0 = """
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL, org TEXT NOT NULL, account TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL
);
CREATE TABLE contacts (
    org TEXT NOT NULL, account TEXT NOT NULL, phone TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    idem_key TEXT NOT NULL, sent_at REAL NOT NULL, run_id INTEGER NOT NULL,
    outcome TEXT, contact_id TEXT, http_status INTEGER, error_code TEXT,
    request_id TEXT, updated_at REAL NOT NULL,
    needs_lookup INTEGER NOT NULL DEFAULT 0,
    UNIQUE (org, account, phone)
);
INSERT INTO runs VALUES (1, 'f1', 'org_old', '1', 1700000000.0, 1700000100.0);
INSERT INTO runs VALUES (2, 'f2', 'org_old', '1', 1700000200.0, NULL);
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    monkeypatch.setenv("KIRIM_API_KEY", sandbox.token)


def run(box: Sandbox, file: Path, reports: Path, journal: Path) -> int:
    return main(
        ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
         "--state", str(journal), "--default-region", "ID"]
    )  # fmt: skip


def contacts(path: Path, numbers: range, *, invalid: int = 0, duplicates: int = 0) -> Path:
    """Contacts with these phone numbers, then bad phones, then repeats of the first."""
    rows = [{"Phone": phone(i), "Name": f"Contact {i}"} for i in numbers]
    rows += [{"Phone": "12", "Name": "Bad"} for _ in range(invalid)]
    rows += [{"Phone": phone(numbers[0]), "Name": "Again"} for _ in range(duplicates)]
    return write_contacts(path, rows)


def history(journal: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    capsys.readouterr()
    assert main(["history", "--state", str(journal), *extra]) == 0
    return capsys.readouterr().out.splitlines()


def summary(reports: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reports / "summary.json").read_text())
    return data


def test_history_lists_finished_failed_stopped_and_resumed_runs_newest_first(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "journal.sqlite"
    clean = contacts(tmp_path / "clean.csv", range(1, 11))
    messy = contacts(tmp_path / "messy.csv", range(11, 15), invalid=2, duplicates=1)
    later = contacts(tmp_path / "later.csv", range(15, 21))
    assert run(sandbox, clean, tmp_path / "r1", journal) == 0
    assert run(sandbox, messy, tmp_path / "r2", journal) == 1
    sandbox.set_faults(retry_after_s=1000)  # more than the run will wait: it stops
    assert run(sandbox, later, tmp_path / "r3", journal) == 3

    lines = history(journal, capsys)
    assert [line.split()[0] for line in lines] == ["#3", "#2", "#1"]
    stopped, messy_line, clean_line = lines
    assert "later.csv" in stopped
    assert "skip" in stopped
    assert f"exit 3  {tmp_path / 'r3'}  stopped: Kirim asks to wait 1000 s" in stopped
    assert "4 created, 1 duplicate_in_file, 2 invalid" in messy_line
    assert "exit 1" in messy_line
    assert "10 created" in clean_line
    assert "exit 0" in clean_line
    assert len({line.index("exit") for line in lines}) == 1  # in columns

    records = [json.loads(line) for line in history(journal, capsys, "--json")]
    for record, folder in zip(records, ("r3", "r2", "r1"), strict=True):
        s = summary(tmp_path / folder)
        assert record["report_dir"] == str(tmp_path / folder)
        assert record["counts"] == {
            k: v for k, v in s.items() if k in ("created", "updated", "unchanged", "exists",
                                                "duplicate_in_file", "invalid", "failed")
        }  # fmt: skip
        assert (record["requests"], record["http_429"], record["exit_code"]) == (
            s["requests_sent"], s["http_429"], s["exit_code"]
        )  # fmt: skip
        assert record["duration_s"] == s["elapsed_s"]
        assert record["mode"] == "skip"
    assert records[0]["http_429"] >= 1
    assert not records[0]["finished"]
    assert records[0]["stopped"] == summary(tmp_path / "r3")["stopped"]
    assert records[2]["finished"]
    assert records[2]["counts"]["created"] == 10

    # the stopped run, rerun: it resumes under its own number, and its record is the rerun's
    sandbox.set_faults(retry_after_s=None)
    assert run(sandbox, later, tmp_path / "r4", journal) == 0
    lines = history(journal, capsys)
    assert [line.split()[0] for line in lines] == ["#3", "#2", "#1"]
    assert "6 created" in lines[0]
    assert "exit 0" in lines[0]
    # both invocations' requests and time, and the first one's stop reason, never a mix
    assert "in 2 goes" in lines[0]
    assert lines[0].endswith(f"{tmp_path / 'r4'}  resumed after: {records[0]['stopped']}")
    again = next(json.loads(line) for line in history(journal, capsys, "--json"))
    first, second = summary(tmp_path / "r3"), summary(tmp_path / "r4")
    assert again["requests"] == first["requests_sent"] + second["requests_sent"]
    assert again["stops"] == [first["stopped"]]
    assert (again["invocations"], again["stopped"], again["finished"]) == (2, None, True)


def test_a_journal_from_0_2_0_shows_what_it_has_then_keeps_records(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "old.sqlite"
    with sqlite3.connect(journal) as db:
        db.executescript(SCHEMA_0_2_0)
    lines = history(journal, capsys)
    assert [line.split()[0] for line in lines] == ["#2", "#1"]
    assert "unfinished, no record" in lines[0]
    assert "finished, no record" in lines[1]
    old = [json.loads(line) for line in history(journal, capsys, "--json")]
    assert [(r["run_id"], r["finished"], r["exit_code"]) for r in old] == [
        (2, False, None),
        (1, True, None),
    ]

    file = contacts(tmp_path / "in.csv", range(1, 4))
    assert run(sandbox, file, tmp_path / "r", journal) == 0
    lines = history(journal, capsys)
    assert [line.split()[0] for line in lines] == ["#3", "#2", "#1"]
    assert "3 created" in lines[0]
    assert "no record" in lines[1]


def test_history_without_a_journal_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["history"]) == 2
    assert "no journal at reports/kirim-journal.sqlite" in capsys.readouterr().err
    (tmp_path / "not.sqlite").write_text("hello")
    assert main(["history", "--state", "not.sqlite"]) == 2
    assert "not.sqlite" in capsys.readouterr().err
