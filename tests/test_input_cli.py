"""Real-world input through ``main(argv)``: what people export is read right, or refused with
a message naming the file, the line and the cause; never a traceback or a library's words."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from importer.cli import main
from importer.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
LIBRARY_WORDS = ("Traceback", "polars", "calamine", "fastexcel", "ComputeError", "Error:")


def _results(reports: Path) -> list[dict[str, str]]:
    with (reports / "results.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _clean(text: str) -> None:
    for word in LIBRARY_WORDS:
        assert word not in text, text


def test_stray_quotes_run_whole_in_the_sandbox(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("KIRIM_API_KEY", sandbox.token)
    rows = [f'+62812{i:08d},"Nama {i}",ok' for i in range(1, 301)]
    rows[150] = '+6281200000151,TV 32" Budi,ok'
    rows[200] = '+6281200000201,"Joko" Widodo,ok'
    path = tmp_path / "quotes.csv"
    path.write_text("Phone,Name,Note\n" + "\n".join(rows) + "\n", encoding="utf-8")
    reports = tmp_path / "r"
    code = main(["run", str(path), "--base-url", sandbox.base_url, "--report-dir", str(reports),
                 "--state", str(tmp_path / "j.sqlite")])  # fmt: skip
    captured = capsys.readouterr()
    _clean(captured.out + captured.err)
    assert code == 0
    got = _results(reports)
    assert [r["status"] for r in got] == ["created"] * 300
    assert got[150]["name"] == 'TV 32" Budi'
    assert got[200]["name"] == "Joko Widodo"  # as Python's csv module reads it (warned)
    assert "(line 202, column 'Name')" in captured.out + captured.err
    assert len(sandbox.creations_by_phone()) == 300


def test_excel_blank_first_line_keeps_row_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        b";;;\r\nNo HP;Nama;Kota;X\r\n0812345678901;Budi;Bogor;\r\n0812;Ani;Depok;\r\n"
    )
    assert (
        main(["plan", str(path), "--default-region", "ID", "--report-dir", str(tmp_path / "r")])
        == 1
    )
    failures = list(csv.DictReader((tmp_path / "r" / "failures.csv").open(encoding="utf-8")))
    assert [(f["row_number"], f["Nama"], f["error_code"]) for f in failures] == [
        ("2", "Ani", "too_short")
    ]
    out = capsys.readouterr().out
    assert "header_line=2" in out


def test_title_row_error_then_header_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "titled.csv"
    path.write_bytes(b"Daftar Pelanggan Toko Maju\n\nNo HP,Nama\n081234567890,Budi\n")
    assert (
        main(["plan", str(path), "--default-region", "ID", "--report-dir", str(tmp_path / "a")])
        == 2
    )
    err = capsys.readouterr().err
    assert "titled.csv: line 3 has 2 fields but the header (line 1) has 1" in err
    assert "pass --header-row 3" in err
    _clean(err)
    argv = ["plan", str(path), "--default-region", "ID", "--header-row", "3"]
    assert main([*argv, "--report-dir", str(tmp_path / "b")]) == 0


def test_empty_sheet_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import xlsxwriter

    path = tmp_path / "book.xlsx"
    book = xlsxwriter.Workbook(str(path))
    book.add_worksheet("Kosong")
    book.add_worksheet("Data").write_row(0, 0, ["Phone", "Name"])
    book.close()
    assert main(["plan", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert (
        "book.xlsx: sheet 'Kosong' is empty (it needs a header row); sheets that hold data: 'Data'"
        in err
    )
    _clean(err)


def test_float_phone_warns_and_extension_and_two_numbers_are_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typed.csv"
    path.write_text(
        "Phone,Name\n6281234567890.0,Float\ntel:+6281234567891,Link\n"
        "+62 812 3456 7892 ext. 5,Ext\n0812-3456-7893 / 0812-3456-7894,Two\n",
        encoding="utf-8",
    )
    assert (
        main(["plan", str(path), "--default-region", "ID", "--report-dir", str(tmp_path / "r")])
        == 1
    )
    got = _results(tmp_path / "r")
    assert [(r["status"], r["phone_number"], r["error_code"]) for r in got] == [
        ("valid", "+6281234567890", ""),
        ("valid", "+6281234567891", ""),
        ("invalid", "", "has_extension"),
        ("invalid", "", "several_numbers"),
    ]
    assert (
        got[0]["warning"]
        == "column 'Phone': '6281234567890.0' was read as 6281234567890 (a number cell)"
    )
    assert "'0812-3456-7893', '0812-3456-7894'" in got[3]["error_message"]


@pytest.mark.parametrize(
    ("name", "phone_column"),
    [("google_contacts.csv", "Phone 1 - Value"), ("outlook_contacts.csv", "Mobile Phone")],
)
def test_contact_exports(
    name: str, phone_column: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["plan", str(SAMPLES / name), "--default-region", "ID", "--report-dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert f"phone_number <- '{phone_column}' (alias); where it is empty or holds" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rows_total"] == 8
    got = _results(tmp_path)
    assert code == 1  # each sample carries invalid rows on purpose
    assert any(r["warning"].startswith(f"column '{phone_column}' is empty") for r in got)
    assert any(r["error_code"] == "several_numbers" for r in got) or name.startswith("outlook")


def test_stdin_with_format(tmp_path: Path) -> None:
    data = b"Phone,Name\n+6281234567890,Budi\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "importer", "plan", "-", "--format", "csv",
         "--report-dir", str(tmp_path / "r")],
        input=data, capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"Input: - (csv, encoding='utf-8', delimiter=',')" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "importer", "plan", "-", "--report-dir", str(tmp_path / "s")],
        input=data, capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert b"reading standard input ('-') needs --format" in missing.stderr


def test_a_read_failure_mid_run_is_a_clean_stop(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("KIRIM_API_KEY", sandbox.token)
    n = 150_000
    path = tmp_path / "damaged.parquet"
    pl.DataFrame({"Phone": [f"+62812{i:08d}" for i in range(n)]}).write_parquet(
        path, row_group_size=5_000, compression="uncompressed", statistics=False
    )
    data = bytearray(path.read_bytes())
    for i in range(int(len(data) * 0.80), int(len(data) * 0.82)):
        data[i] = 0xAB  # a damaged page late in the file; the footer is intact
    path.write_bytes(bytes(data))
    reports = tmp_path / "r"
    code = main(["run", str(path), "--base-url", sandbox.base_url, "--report-dir", str(reports),
                 "--state", str(tmp_path / "j.sqlite"), "--limit", "5"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 3
    assert "Nothing was sent" not in captured.err
    assert "Stopped early: the input could not be read further: " in captured.out
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["created"] == 5
    assert summary["rows_total"] >= 50_000  # every row read is reported
    assert not list(reports.glob("*.partial"))
