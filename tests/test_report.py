"""The report on its own: counts, formula-safe CSVs, atomic files and the exit code."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl

from importer.records import VALIDATED_SCHEMA, Status
from importer.report import Report, RunStats
from importer.send.records import RowResult


def planned(rows: list[dict[str, object]]) -> pl.DataFrame:
    full = [{k: r.get(k) for k in VALIDATED_SCHEMA} for r in rows]
    return pl.DataFrame(full, schema=VALIDATED_SCHEMA)


def test_plan_report_counts_add_up_and_cells_are_neutralised(tmp_path: Path) -> None:
    rows = planned(
        [
            {
                "row_number": 1,
                "status": "valid",
                "phone_number": "+6281234567890",
                "name": "=cmd|x",
            },
            {
                "row_number": 2,
                "status": "invalid",
                "raw_phone": "=HYPERLINK(1)",
                "error_code": "not_a_number",
                "error_message": "column 'Phone': not a number",
            },
            {
                "row_number": 3,
                "status": "duplicate_in_file",
                "phone_number": "+6281234567890",
                "error_code": "duplicate_in_file",
                "duplicate_of": 1,
            },
        ]
    )
    original = pl.DataFrame(
        {
            "Phone": ["+6281234567890", "=HYPERLINK(1)", "0812 3456 7890"],
            "Name": ["=cmd|x", "@bob", "-x"],
        }
    )
    report = Report(directory=tmp_path, dry_run=True)
    report.add_batch(rows=rows, original=original)
    code = report.finish(stats=RunStats(), elapsed_s=0.5, extra={})
    assert code == 1  # one invalid row
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (
        summary["rows_total"],
        summary["valid"],
        summary["invalid"],
        summary["duplicate_in_file"],
    ) == (3, 1, 1, 1)
    results = list(csv.DictReader((tmp_path / "results.csv").open(encoding="utf-8")))
    assert [r["status"] for r in results] == ["valid", "invalid", "duplicate_in_file"]
    assert results[0]["phone_number"] == "+6281234567890"  # a number, left alone
    assert results[0]["name"] == "'=cmd|x"
    assert results[1]["raw_phone"] == "'=HYPERLINK(1)"
    failures = list(csv.DictReader((tmp_path / "failures.csv").open(encoding="utf-8")))
    assert len(failures) == 1
    assert failures[0]["Phone"] == "'=HYPERLINK(1)"  # shown as text, read back by the reader
    assert failures[0]["Name"] == "'@bob"
    assert failures[0]["error_code"] == "not_a_number"
    assert failures[0]["retryable"] == "false"


def test_sent_outcomes_replace_the_planned_status(tmp_path: Path) -> None:
    rows = planned(
        [{"row_number": n, "status": "valid", "phone_number": f"+628123456789{n}"} for n in (1, 2)]
    )
    report = Report(directory=tmp_path, dry_run=False)
    report.add_batch(
        rows=rows,
        original=pl.DataFrame({"Phone": ["a", "b"]}),
        results=[
            RowResult(
                2,
                Status.FAILED,
                http_status=400,
                error_code="invalid_phone_number",
                error_message="bad",
                attempts=1,
                retryable=False,
            ),
            RowResult(
                1, Status.CREATED, contact_id="ctc_1", http_status=201, attempts=2, replayed=True
            ),
        ],
    )
    assert report.finish(stats=RunStats(requests_sent=3), elapsed_s=1.0, extra={}) == 1
    results = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [
        (r["row_number"], r["status"], r["contact_id"], r["attempts"], r["replayed"])
        for r in results
    ] == [("1", "created", "ctc_1", "2", "true"), ("2", "failed", "", "1", "false")]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["created"], summary["failed"], summary["requests_sent"]) == (1, 1, 3)


def test_files_appear_only_when_finished(tmp_path: Path) -> None:
    report = Report(directory=tmp_path, dry_run=True)
    report.add_batch(
        rows=planned([{"row_number": 1, "status": "valid"}]),
        original=pl.DataFrame({"Phone": ["x"]}),
    )
    assert not (tmp_path / "results.csv").exists()  # a crash now leaves only .partial files
    report.abandon()
    assert not (tmp_path / "results.csv").exists()
    assert (tmp_path / "results.csv.partial").exists()


def test_exit_codes(tmp_path: Path) -> None:
    report = Report(directory=tmp_path, dry_run=False)
    report.add_batch(
        rows=planned([{"row_number": 1, "status": "valid"}]),
        original=pl.DataFrame({"Phone": ["x"]}),
        results=[RowResult(1, Status.FAILED, error_code="limit_reached", retryable=True)],
    )
    assert report.tally.exit_code(RunStats(ignore_codes=frozenset({"limit_reached"}))) == 0
    assert report.tally.exit_code(RunStats()) == 1
    assert report.tally.exit_code(RunStats(stopped="interrupted by SIGINT")) == 3
    report.abandon()
