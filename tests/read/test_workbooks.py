"""Every workbook format, --sheet, empty sheets, dates and times; compressed files and
content that does not match its name."""

from __future__ import annotations

import bz2
import datetime
import gzip
import lzma
from pathlib import Path

import polars as pl
import pytest
import zstandard

from importer.cli import main
from importer.errors import InputError
from importer.options import InputOptions
from importer.read.source import SourceReader, open_source


def _open(path: Path, **kw: object) -> SourceReader:
    return open_source(options=InputOptions(path=path, **kw))  # type: ignore[arg-type]


def _read(path: Path, **kw: object) -> pl.DataFrame:
    return pl.concat(list(_open(path, **kw).batches()))


def _xlsx(path: Path) -> Path:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    hidden = book.add_worksheet("Old")
    hidden.write_row(0, 0, ["Phone", "Name"])
    hidden.write_row(1, 0, ["0811", "hidden"])
    hidden.hide()
    data = book.add_worksheet("Kontak")
    book.add_worksheet("Kosong")  # empty
    more = book.add_worksheet("Lain")
    more.write_row(0, 0, ["Phone", "Name"])
    more.write_row(1, 0, ["0819", "other"])
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    time = book.add_format({"num_format": "hh:mm"})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    data.write_row(0, 0, ["Phone", "Name", "Born", "Call at", "Seen"])
    data.write_string(1, 0, "0812")
    data.write(1, 1, "Budi")
    data.write_datetime(1, 2, datetime.datetime(2024, 1, 15), date)
    data.write_datetime(1, 3, datetime.datetime(1899, 12, 31, 14, 30), time)
    data.write_datetime(1, 4, datetime.datetime(2024, 1, 15, 9, 5), stamp)
    data.write_number(2, 0, 6281234567890)
    data.write(2, 1, "Ani")
    data.activate()
    book.close()
    return path


def test_xlsx_first_visible_sheet_dates_times_and_other_sheets(tmp_path: Path) -> None:
    reader = _open(_xlsx(tmp_path / "c.xlsx"))
    assert reader.info.sheet == "Kontak"  # "Old" is hidden
    assert reader.info.notes == ("other sheets hold data too: 'Lain' (--sheet)",)
    df = pl.concat(list(reader.batches()))
    assert df.rows() == [
        (1, "0812", "Budi", "2024-01-15", "14:30", "2024-01-15 09:05"),
        (2, "6281234567890", "Ani", None, None, None),
    ]


@pytest.mark.parametrize(("wanted", "name"), [("lain", "Lain"), ("4", "Lain"), ("OLD", "Old")])
def test_sheet_by_name_any_case_or_position(tmp_path: Path, wanted: str, name: str) -> None:
    assert _open(_xlsx(tmp_path / "c.xlsx"), sheet=wanted).info.sheet == name


def test_empty_sheet_names_the_sheets_with_data(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "c.xlsx")
    with pytest.raises(InputError, match=r"sheet 'Kosong' is empty .*sheets that hold data: "
                       r"'Kontak', 'Lain' \(pick one with --sheet\)"):  # fmt: skip
        _open(path, sheet="kosong")
    with pytest.raises(InputError, match=r"--sheet 9: the workbook has 4 sheet\(s\)"):
        _open(path, sheet="9")


def test_sheet_title_row_and_header_row(tmp_path: Path) -> None:
    import xlsxwriter

    path = tmp_path / "t.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write(0, 0, "Daftar Pelanggan")
    sheet.write_row(1, 0, ["No HP", "Nama"])
    sheet.write_row(2, 0, ["0812", "A"])
    book.close()
    with pytest.raises(InputError, match=r"row 1 looks like a title and row 2 like the header: "
                       r"pass --header-row 2"):  # fmt: skip
        _open(path)
    assert _read(path, header_row=2).rows() == [(1, "0812", "A")]


def test_xls(tmp_path: Path) -> None:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Data")
    for col, value in enumerate(["Phone", "Name"]):
        sheet.write(0, col, value)
    sheet.write(1, 0, 6281234567890.0)
    sheet.write(1, 1, "Budi")
    path = tmp_path / "old.xls"
    book.save(str(path))
    reader = _open(path)
    assert (reader.info.format, reader.info.sheet) == ("xls", "Data")
    assert pl.concat(list(reader.batches())).rows() == [(1, "6281234567890", "Budi")]


def test_ods(tmp_path: Path) -> None:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="Lembar1")
    for values in (["Phone", "Name"], ["0812 3456 7890", "Siti"]):
        row = TableRow()
        for value in values:
            cell = TableCell(valuetype="string")
            cell.addElement(P(text=value))
            row.addElement(cell)
        table.addElement(row)
    doc.spreadsheet.addElement(table)
    path = tmp_path / "calc.ods"
    doc.save(str(path))
    reader = _open(path)
    assert (reader.info.format, reader.info.sheet) == ("ods", "Lembar1")
    assert pl.concat(list(reader.batches())).rows() == [(1, "0812 3456 7890", "Siti")]


def test_damaged_workbook_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "bad.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(
        InputError, match=r"bad\.xlsx: cannot read this workbook \(XLSX; the workbook library said"
    ):
        _open(path)


def _xls(path: Path) -> Path:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Kontak")
    for column, name in enumerate(["No HP", "Nama", "Kota"]):
        sheet.write(0, column, name)
    for row in range(1, 50):
        sheet.write(row, 0, f"0812{row:07d}")
        sheet.write(row, 1, f"Nama {row}")
        sheet.write(row, 2, 3.5 if row % 3 else "Bogor")
    book.save(str(path))
    return path


def _damaged(path: Path) -> Path:
    """An .xls whose sheet record (BOUNDSHEET, 0x0085) points past the workbook stream, as a
    copy cut short or overwritten leaves it: calamine panics on it (a Rust panic)."""
    data = bytearray(_xls(path).read_bytes())
    at = data.find(b"\x85\x00\x0e\x00")  # the record's type and length; its offset follows
    assert at > 0
    data[at + 4 : at + 8] = (0xFFCD).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def test_a_workbook_the_library_panics_on_is_exit_2_with_its_reason(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _damaged(tmp_path / "rusak.xls")
    assert main(["plan", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    out, err = capfd.readouterr()
    error = [line for line in err.splitlines() if "rusak.xls" in line]
    assert len(error) == 1
    assert "cannot read this workbook (XLS; the workbook library said: " in error[0]
    assert "out of range" in error[0]  # the library's own one-line reason
    for raw in ("Traceback", "panicked", "backtrace", "PanicException"):
        assert raw not in out + err


def test_a_truncated_workbook_is_exit_2(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _xls(tmp_path / "potong.xls")
    path.write_bytes(path.read_bytes()[:4096])
    assert main(["plan", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capfd.readouterr().err
    assert "potong.xls: cannot read this workbook (XLS; the workbook library said: " in err
    assert "Traceback" not in err


def test_the_library_prints_no_warnings_of_its_own(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # fastexcel and calamine log through Python's logging (pyo3-log): with no handler set up
    # Python prints their warnings raw ("Could not determine dtype for column 1, ..."); here
    # pytest's handler would receive them
    import xlsxwriter

    path = tmp_path / "judul.xlsx"  # a title in A1 above the header: row 1 is mostly empty
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Kontak")
    sheet.write(0, 0, "Daftar Pelanggan")
    sheet.write_row(2, 0, ["No HP", "Nama", "Kota", "Catatan"])
    sheet.write_row(3, 0, ["08123456701", "Ani", "Bogor", "x"])
    book.close()
    argv = ["plan", str(path), "--header-row", "3", "--default-region", "ID"]
    assert main([*argv, "--report-dir", str(tmp_path / "r")]) == 0
    out, err = capfd.readouterr()
    assert "Could not determine dtype" not in out + err
    assert not [r for r in caplog.records if r.name.startswith(("fastexcel", "calamine"))]
    assert _xls(tmp_path / "campur.xls")  # a column of numbers and text
    assert main(["plan", str(tmp_path / "campur.xls"), "--report-dir", str(tmp_path / "s")]) == 1
    out, err = capfd.readouterr()
    assert "Could not determine dtype" not in out + err


CSV = b"Phone,Name\n0812,Budi\n0813,Ani\n"


@pytest.mark.parametrize(
    ("suffix", "pack"),
    [
        (".gz", gzip.compress),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
        (".zst", lambda data: zstandard.ZstdCompressor().compress(data)),
    ],
)
def test_compressed_text(tmp_path: Path, suffix: str, pack: object) -> None:
    path = tmp_path / f"contacts.csv{suffix}"
    path.write_bytes(pack(CSV))  # type: ignore[operator]
    reader = _open(path)
    assert (reader.info.path, reader.info.format) == (path, "csv")
    assert reader.info.compression == suffix[1:]
    assert pl.concat(list(reader.batches())).rows() == [(1, "0812", "Budi"), (2, "0813", "Ani")]


def test_compressed_workbook_and_damaged_archive(tmp_path: Path) -> None:
    book = _xlsx(tmp_path / "c.xlsx")
    packed = tmp_path / "c.xlsx.gz"
    packed.write_bytes(gzip.compress(book.read_bytes()))
    assert _open(packed).info.sheet == "Kontak"
    broken = tmp_path / "d.csv.gz"
    broken.write_bytes(gzip.compress(CSV)[:-10])
    with pytest.raises(InputError, match=r"d\.csv\.gz: not a readable gz file"):
        _open(broken)


def test_content_that_does_not_match_the_name(tmp_path: Path) -> None:
    book = _xlsx(tmp_path / "c.xlsx")
    named_csv = tmp_path / "export.csv"
    named_csv.write_bytes(book.read_bytes())
    with pytest.raises(InputError, match=r"export\.csv: the name says csv but the file is a ZIP "
                       r"container \(an XLSX"):  # fmt: skip
        _open(named_csv)
    text_xlsx = tmp_path / "export.xlsx"
    text_xlsx.write_bytes(CSV)
    with pytest.raises(InputError, match=r"export\.xlsx: the name says xlsx but the file is text"):
        _open(text_xlsx)
    assert _read(text_xlsx, format="csv")["Name"].to_list() == ["Budi", "Ani"]  # --format wins


def test_excels_lock_file_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Excel's owner file beside an open workbook: the user's name (a length byte, the name,
    # spaces to 54 bytes), then the name again in UTF-16 after its length: 165 bytes
    user = "Budi Santoso"
    data = bytes([len(user)]) + user.encode().ljust(53, b" ")
    data += len(user).to_bytes(2, "little") + user.encode("utf-16-le")
    path = tmp_path / "~$kontak.xlsx"
    path.write_bytes(data.ljust(165, b"\x20"))
    assert main(["plan", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "~$kontak.xlsx: this is Excel's lock file of an open workbook" in err
    assert "import 'kontak.xlsx' itself" in err
    assert "text (a CSV?)" not in err


def test_a_formula_without_a_saved_value_is_named_not_just_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import openpyxl  # writes formulas without calculating them: no value in the file
    import xlsxwriter

    path = tmp_path / "rumus.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Kontak"
    sheet.append(["No HP", "Nama", "Kota"])
    sheet.append(["08123456701", "Ani", "Bogor"])
    sheet.append(['="0812"&"3456702"', "Budi", "Depok"])
    book.save(path)
    argv = ["plan", str(path), "--default-region", "ID", "--report-dir", str(tmp_path / "r")]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert (
        "warning: sheet 'Kontak': 1 formula cell(s) have no saved value (A3): the program that "
        "wrote the workbook did not calculate them, so they read as empty" in out
    )
    done = tmp_path / "excel.xlsx"  # formulas with their values saved, as Excel keeps them
    saved = xlsxwriter.Workbook(str(done))
    page = saved.add_worksheet("Kontak")
    page.write_row(0, 0, ["No HP", "Nama", "Sapaan"])
    page.write_row(1, 0, ["08123456701", "Ani"])
    page.write_formula(1, 2, '="Bu "&B2', None, "Bu Ani")
    page.write_formula(2, 2, "=1+1", None, 2)
    saved.close()
    reader = _open(done)
    assert not [note for note in reader.info.notes if "formula" in note]


def test_a_workbook_that_makes_the_library_abort_is_exit_2_with_its_reason(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # a cell on the sheet's last row, and a damaged one whose column is past XLS's 256:
    # calamine asks for a 65,536 x 65,536 grid (137 GB), the allocation fails, and Rust
    # aborts the process it runs in (no exception to catch: only a child process survives)
    import xlwt

    path = tmp_path / "besar.xls"
    book = xlwt.Workbook()
    sheet = book.add_sheet("Kontak")
    sheet.write(0, 0, "No HP")
    sheet.write(1, 0, "Budi")
    sheet.write(65535, 0, "akhir")
    book.save(str(path))
    data = bytearray(path.read_bytes())
    at = data.find(b"\xfd\x00\x0a\x00\x01\x00\x00\x00")  # LABELSST of row 2 ("Budi"), column 0
    assert at > 0
    data[at + 6 : at + 8] = (0xFFFF).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    assert main(["plan", str(path), "--report-dir", str(tmp_path / "r")]) == 2
    out, err = capfd.readouterr()
    assert "besar.xls: cannot read this workbook (XLS; the workbook library said: memory " in err
    for raw in ("backtrace", "Aborted", "Traceback"):
        assert raw not in out + err
