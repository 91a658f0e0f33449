"""Cells of a real workbook as the sheet has them: formula error cells are named as such in
the row's message, and row numbers and column letters are the sheet's own, with blank rows
and columns above and left of the table (through ``main(argv)``)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from importer.cli import main
from importer.errors import InputError
from importer.options import InputOptions
from importer.read.records import FORMULA_ERRORS
from importer.read.sheets import _ERRORS
from importer.read.source import open_source

LIBRARY_WORDS = ("Traceback", "polars", "calamine", "fastexcel", "pyarrow", "Expected string")


def _results(reports: Path) -> list[dict[str, str]]:
    with (reports / "results.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _failures(reports: Path) -> list[dict[str, str]]:
    with (reports / "failures.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _plan(
    path: Path, reports: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    code = main(["plan", str(path), "--default-region", "ID", "--report-dir", str(reports),
                 *extra])  # fmt: skip
    captured = capsys.readouterr()
    for word in LIBRARY_WORDS:
        assert word not in captured.out + captured.err
    return code, captured.out + captured.err


def _errors_book(path: Path) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Kontak")
    sheet.write_row(0, 0, ["Phone", "Name", "Kota", "Skor"])
    sheet.write_row(1, 0, ["081234567890", "Budi", "Bogor", "1"])
    # cached error values, as Excel stores a formula that failed
    sheet.write_formula("A3", "=VLOOKUP(B3,Z1:AA2,2,FALSE)", None, "#N/A")
    sheet.write_row(2, 1, ["Siti", "Depok", "2"])
    sheet.write_row(3, 0, ["081234567891", "Ani", "Bekasi"])
    sheet.write_formula("D4", "=1/0", None, "#DIV/0!")
    sheet.write_row(4, 0, ["081234567892", "Joko", "Bandung", "3"])
    sheet.write_formula("D5", "=1+2", None, 3)  # a formula that worked: its value
    sheet.write_row(5, 0, ["081234567893"])
    sheet.write_formula("B6", "=A1+", None, "#NAME?")
    book.close()
    return path


def test_formula_error_cells_read_as_excel_shows_them(tmp_path: Path) -> None:
    reader = open_source(options=InputOptions(path=_errors_book(tmp_path / "e.xlsx")))
    rows = [r for b in reader.batches() for r in b.rows()]
    assert rows == [
        (1, "081234567890", "Budi", "Bogor", "1"),
        (2, "#N/A", "Siti", "Depok", "2"),
        (3, "081234567891", "Ani", "Bekasi", "#DIV/0!"),
        (4, "081234567892", "Joko", "Bandung", "3"),
        (5, "081234567893", "#NAME?", None, None),
    ]
    assert set(_ERRORS.values()) <= set(FORMULA_ERRORS)


def test_formula_error_cell_makes_its_row_invalid_naming_column_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "r"
    assert _plan(_errors_book(tmp_path / "e.xlsx"), reports, capsys)[0] == 1
    got = {int(r["row_number"]): r for r in _results(reports)}
    assert [got[n]["status"] for n in range(1, 6)] == [
        "valid", "invalid", "invalid", "valid", "invalid"
    ]  # fmt: skip
    for n, column, error in ((2, "Phone", "#N/A"), (3, "Skor", "#DIV/0!"), (5, "Name", "#NAME?")):
        assert got[n]["error_code"] == "formula_error"
        assert got[n]["error_message"].startswith(
            f"column '{column}' holds {error}, a formula error: the spreadsheet could not "
            "compute this cell"
        )
    assert got[4]["status"] == "valid"  # the formula that worked reads as its value
    # failures.csv keeps the cell as the spreadsheet shows it, ready to fix
    failed = {r["row_number"]: r for r in _failures(reports)}
    assert failed["3"]["Skor"] == "#DIV/0!"


def test_formula_error_text_in_a_csv_export_is_named_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.csv"  # Excel writes an error cell's text to CSV
    path.write_text("Phone,Name,Note\n081234567890,Budi,ok\n081234567891, #REF! ,ok\n")
    reports = tmp_path / "r"
    assert _plan(path, reports, capsys)[0] == 1
    got = _results(reports)
    assert got[0]["status"] == "valid"
    assert got[1]["error_code"] == "formula_error"
    assert got[1]["error_message"].startswith("column 'Name' holds #REF!, a formula error")


def _offset_book(path: Path) -> Path:
    """Row 2 a title in column B; the table from B5 (rows 3-4 and column A empty)."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write(1, 1, "Daftar Pelanggan")
    sheet.write_row(4, 1, ["No HP", "Nama", "Nama"])
    sheet.write_row(5, 1, ["081234567890", "Budi"])
    book.close()
    return path


def test_header_row_and_cells_are_the_sheets_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _offset_book(tmp_path / "o.xlsx")
    with pytest.raises(InputError, match=r"duplicate column name 'Nama' \(sheet 'S', cell C5 "
                       r"and sheet 'S', cell D5\)"):  # fmt: skip
        open_source(options=InputOptions(path=path, header_row=5))
    with pytest.raises(InputError, match=r"row 2 looks like a title and row 5 like the header"):
        open_source(options=InputOptions(path=path))
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write(1, 1, "Daftar Pelanggan")
    sheet.write_row(4, 1, ["No HP", "Nama"])
    sheet.write_row(5, 1, ["081234567890", "Budi"])
    sheet.write_row(7, 1, ["0812", "Ani"])  # row 7 blank: not a row, not counted
    book.close()
    reports = tmp_path / "r"
    code, out = _plan(path, reports, capsys, "--header-row", "5")
    assert code == 1
    assert "header_line=5" in out
    got = _results(reports)
    assert [(r["row_number"], r["status"], r["name"]) for r in got] == [
        ("1", "valid", "Budi"), ("2", "invalid", "Ani")
    ]  # fmt: skip
    code, out = _plan(path, tmp_path / "r2", capsys, "--header-row", "2")
    assert code == 2  # the title row as the header: its one name, and data in column C
    assert "sheet 'S', cell C2 has no column name but holds data" in out
