"""Reading real files: CSV dialects and encodings, XLSX, Parquet, and every input error."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.source import SourceReader, open_source


def _open(path: Path, **kw: object) -> SourceReader:
    return open_source(options=InputOptions(path=path, **kw))  # type: ignore[arg-type]


def _read(path: Path, **kw: object) -> pl.DataFrame:
    reader = _open(path, **kw)
    frames = list(reader.batches())
    return pl.concat(frames) if frames else pl.DataFrame()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_excel_style_bom_semicolon_crlf(tmp_path: Path) -> None:
    text = 'No HP ; Nama;Kota\r\n0812-1;Budi;Jakarta\r\n\r\n;;\r\n+62 813;Siti;"Ban;\r\ndung"\r\n'
    path = _write(tmp_path, "a.csv", b"\xef\xbb\xbf" + text.encode())
    reader = _open(path)
    assert reader.info.columns == ("No HP", "Nama", "Kota")
    assert (reader.info.delimiter, reader.info.encoding) == (";", "utf-8-sig")
    assert reader.rows == 2
    df = pl.concat(list(reader.batches()))
    assert df.columns == ["row_number", "No HP", "Nama", "Kota"]
    assert df["row_number"].to_list() == [1, 2]  # blank lines are not rows
    assert df["Kota"].to_list() == ["Jakarta", "Ban;\r\ndung"]
    assert all(dtype == pl.String for dtype in df.drop("row_number").dtypes)


@pytest.mark.parametrize(("delimiter", "sep"), [("\t", "\t"), ("|", "|"), (",", ",")])
def test_delimiter_detected(tmp_path: Path, delimiter: str, sep: str) -> None:
    path = _write(tmp_path, "a.txt", f'phone{sep}name\n+628123{sep}"A, B"\n'.encode())
    reader = _open(path)
    assert reader.info.delimiter == delimiter
    assert pl.concat(list(reader.batches()))["name"].to_list() == ["A, B"]


def test_tsv_and_delimiter_override(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.tsv", b"phone\tname;x\n1\tA;B\n")
    assert _read(path)["name;x"].to_list() == ["A;B"]
    path = _write(tmp_path, "b.csv", b"phone,name;x\n1,A;B\n")
    assert _read(path, delimiter=";").columns == ["row_number", "phone,name", "x"]


def test_cp1252_detected_and_transcoded(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", "phone;Nombre\n+52 1;José Müller\n".encode("cp1252"))
    reader = _open(path)
    assert reader.info.encoding == "cp1252"
    assert pl.concat(list(reader.batches()))["Nombre"].to_list() == ["José Müller"]
    reader.close()


def test_transcoded_copy_lives_as_long_as_its_batches(tmp_path: Path) -> None:
    # pipeline.prepare keeps only reader.batches(): dropping the reader must not remove the copy
    path = _write(tmp_path, "a.csv", "phone;Nombre\n+52 1;José\n".encode("cp1252"))
    batches = _open(path).batches()
    assert pl.concat(list(batches))["Nombre"].to_list() == ["José"]


def test_invalid_encoding_names_file_offset_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", b"phone,name\n1,ok\n2,bad \xff here\n")
    with pytest.raises(InputError, match=r"a\.csv.*utf-8.*0xff at offset 22 \(line 3\)"):
        _open(path, encoding="utf-8")
    damaged = "phone,name\n1,José\n2,Müller\n3,".encode() + b"Ren\xe9\n"  # UTF-8, one bad byte
    message = r"b\.csv: the file is UTF-8 but 1 byte.*line 4.*--encoding"
    with pytest.raises(InputError, match=message):
        _open(_write(tmp_path, "b.csv", damaged))


def test_utf16_bom(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.txt", "phone\tname\r\n+628\tÅsa\r\n".encode("utf-16"))
    assert _read(path)["name"].to_list() == ["Åsa"]


def test_formula_escaping_undone(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.csv", b"phone,note\n+6281,'=SUM(A1)\n'+62,'-3\n")
    df = _read(path)
    assert df["note"].to_list() == ["=SUM(A1)", "'-3"]
    assert df["phone"].to_list() == ["+6281", "'+62"]


def test_header_only_is_zero_rows(tmp_path: Path) -> None:
    reader = _open(_write(tmp_path, "a.csv", b"phone,name\n"))
    assert reader.rows == 0
    assert list(reader.batches()) == []


def test_batches_are_bounded_and_reiterable(tmp_path: Path) -> None:
    body = "".join(f"+62812{i:06d},n{i}\n" for i in range(25))
    reader = _open(_write(tmp_path, "a.csv", ("phone,name\n" + body).encode()), batch_size=10)
    sizes = [b.height for b in reader.batches()]
    assert sizes == [10, 10, 5]
    again = pl.concat(list(reader.batches()))
    assert again["row_number"].to_list() == list(range(1, 26))


def test_empty_header_column_without_data_is_dropped(tmp_path: Path) -> None:
    df = _read(_write(tmp_path, "a.csv", b"phone;name;\n1;a;\n2;b;\n"))
    assert df.columns == ["row_number", "phone", "name"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("e.csv", b"", r"e\.csv: the file is empty"),
        ("b.csv", b"\n\n  \n", r"b\.csv: the file has only blank lines"),
        ("d.csv", b"phone,name,phone\n1,2,3\n", r"d\.csv: duplicate column name 'phone'"),
        ("s.csv", b" phone,phone \n1,2\n", r"s\.csv: duplicate column name 'phone'"),
        ("h.csv", b"phone,,x\n1,2,3\n", r"h\.csv: line 1, column 2 has no column name"),
        ("n.csv", b"+6281234567,Budi\n+6281234568,Ani\n", r"n\.csv: .*looks like data"),
        (
            "r.csv",
            b"a,b\n1,2\n\n3,4,5\n",
            r"r\.csv: line 4 has 3 fields but the header \(line 1\) has 2",
        ),
        ("t.csv", b"a;b\r\n1;2\r\n4;5;6\r\n", r"t\.csv: line 3 has 3 fields .* has 2"),
        ("q.csv", b'a,b\n"x\ny",1\n2,3,4\n', r"q\.csv: line 4 has 3 fields"),
        ("x.json", b"{}", r"x\.json: unknown file type '\.json'"),
    ],
)
def test_input_errors(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        _open(_write(tmp_path, name, data))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        _open(tmp_path / "nope.csv")


def test_xlsx_numeric_phone_cells_and_sheet(tmp_path: Path) -> None:
    path = tmp_path / "c.xlsx"
    frame = pl.DataFrame(
        {"Teléfono": [6281234567890.0, 5215512345678.0, 1.5], "Nombre": ["Ana", "=x", None]}
    )
    frame.write_excel(path, worksheet="Clientes")
    df = _read(path)
    assert df["Teléfono"].to_list() == ["6281234567890", "5215512345678", "1.5"]
    assert _open(path).info.sheet == "Clientes"
    with pytest.raises(
        InputError, match=r"c\.xlsx: no sheet named 'Nope'; the sheets are 'Clientes'"
    ):
        _open(path, sheet="Nope")


def test_xlsx_int_cells_and_blank_rows(tmp_path: Path) -> None:
    import xlsxwriter

    path = tmp_path / "b.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    sheet.write_row(0, 0, [" Phone ", "Name"])
    sheet.write_row(1, 0, [6281234567890, "A"])
    sheet.write_row(3, 0, ["+62 812", "B"])  # row 3 left blank
    book.close()
    df = _read(path, batch_size=1)
    assert df.columns == ["row_number", "Phone", "Name"]
    assert df.rows() == [(1, "6281234567890", "A"), (2, "+62 812", "B")]


def test_parquet_int_and_float_phones(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {
            "phone": pl.Series([6281234567890, None], dtype=pl.Int64),
            "alt": [6281234567890.0, 0.1],
            "ok": [True, False],
        }
    ).write_parquet(path)
    df = _read(path)
    assert df["phone"].to_list() == ["6281234567890", None]
    assert df["alt"].to_list() == ["6281234567890", "0.1"]
    assert df["ok"].to_list() == ["true", "false"]


def test_not_parquet(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"p\.parquet: the name says parquet but the file is text"):
        _open(_write(tmp_path, "p.parquet", b"phone\n1\n"))
    with pytest.raises(InputError, match=r"q\.parquet: not a readable Parquet file"):
        _open(_write(tmp_path, "q.parquet", b"PAR1 but damaged"))


def test_failures_csv_fed_back_drops_report_columns(tmp_path: Path) -> None:
    data = b"Phone,Name,row_number,error_code,error_message,retryable\n12,A,7,too_short,x,false\n"
    reader = _open(_write(tmp_path, "failures.csv", data))
    assert reader.info.columns == ("Phone", "Name", "source_row")  # row_number, kept as such
    assert pl.concat(list(reader.batches())).rows() == [(1, "12", "A", "7")]
    again = b"Phone,source_row,row_number,error_code,error_message,retryable\n12,7,1,x,y,false\n"
    reader = _open(_write(tmp_path, "failures2.csv", again))  # a retry's: the first file's row
    assert pl.concat(list(reader.batches())).rows() == [(1, "12", "7")]


@pytest.mark.parametrize("name", ["row_number", "source_row"])
def test_row_number_headers_are_reserved(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match=rf"a\.csv: line 1, column 2: the column name '{name}'"):
        _open(_write(tmp_path, "a.csv", f"Phone,{name}\n1,2\n".encode()))


def _layout(delimiter: str = ",") -> object:
    from importer.read import text as textfile

    return textfile._Layout(delimiter, 0, False, False)


def test_quick_check_agrees_with_the_careful_pass(tmp_path: Path) -> None:
    """The polars check pass for unquoted files gives what the one parser's pass gives, or
    declines; seeded random files of ragged, blank and whitespace lines."""
    from importer.read import text as textfile

    rng = random.Random(5)
    cells = ["", " ", "x", "y z", "\u00a0", "+62812", "a@b.id", "\t"]
    quick_taken = 0
    for n in range(300):
        width = rng.randint(1, 4)
        lines = [",".join(f"h{i}" for i in range(width))]
        for _ in range(rng.randint(0, 6)):
            cols = width if rng.random() < 0.8 else rng.randint(1, width + 1)
            lines.append(",".join(rng.choice(cells) for _ in range(cols)))
        if rng.random() < 0.3:
            lines.insert(0, rng.choice(["", " ", ",,"]))
        end = rng.choice(["\n", "\r\n"])
        path = _write(tmp_path, f"f{n}.csv", (end.join(lines) + end).encode())
        layout = _layout()
        try:
            spool = tmp_path / f"spool{n}"
            got = textfile._check_and_spool(path, path, layout, spool, 100)  # type: ignore[arg-type]
            careful: tuple[list[str], int, int] | str = got[:3]
        except InputError as exc:
            careful = str(exc)
        try:
            found = textfile._quick_check(path, path, layout)  # type: ignore[arg-type]
            quick: tuple[list[str], int, int] | str | None = found[:3] if found else None
        except InputError as exc:
            quick = str(exc)
        if quick is not None:
            quick_taken += 1
            assert quick == careful, lines
    assert quick_taken > 100  # the quick pass is really exercised


def test_quick_check_declines_quotes_and_lone_cr(tmp_path: Path) -> None:
    from importer.read import text as textfile

    bom = b"\xef\xbb\xbf"
    layout = _layout()
    for data in (
        b'a,b\n"1",2\n',
        b"a,b\r1,2\r",
        b"a,\n1,\n",
        b"a\n1\n" + bom,
        b"a,b\n" + bom + b",",
    ):
        path = _write(tmp_path, "a.csv", data)
        assert textfile._quick_check(path, path, layout) is None  # type: ignore[arg-type]
    path = _write(tmp_path, "b.csv", bom + b"\n a , b \r\n1,2\r\n\r\n,\r\n3,4\r\n")
    found = textfile._quick_check(path, path, layout)  # type: ignore[arg-type]
    assert found is not None
    assert found[:3] == (["a", "b"], 2, 2)  # a leading BOM is fine; the header is line 2
    path = _write(tmp_path, "c.csv", b"a\n" + b"1\n" * (1 << 20) + bom + b"\n")  # past 1 chunk
    assert textfile._quick_check(path, path, layout) is None  # type: ignore[arg-type]
