"""Text files as spreadsheet programs write them: one parser decides the structure, where
the header is, line endings, ``sep=``, short rows, encodings."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import polars as pl
import pytest

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.parse import BLOCK_CHARS, records
from importer.read.source import SourceReader, open_source


def _open(path: Path, **kw: object) -> SourceReader:
    return open_source(options=InputOptions(path=path, **kw))  # type: ignore[arg-type]


def _read(path: Path, **kw: object) -> pl.DataFrame:
    return pl.concat(list(_open(path, **kw).batches()))


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_stray_quotes_in_unquoted_fields_are_text(tmp_path: Path) -> None:
    data = b'Phone,Name,Note\n0812,Bu"di,TV 32"\n0813,"Joko" Widodo,"a, b"\n0814,Ani,x\n'
    reader = _open(_write(tmp_path, "a.csv", data))
    assert pl.concat(list(reader.batches())).rows() == [
        (1, "0812", 'Bu"di', 'TV 32"'),
        (2, "0813", "Joko Widodo", "a, b"),  # as Python's csv module reads it
        (3, "0814", "Ani", "x"),
    ]
    assert reader.info.notes == (
        "1 quoted field(s) had more text after the closing quote (line 3, column 'Name'): each "
        "was read as one field, the quotes dropped and the text kept, as Python's csv module "
        "reads it; check those cells",
    )


def test_excel_style_quoted_field_followed_by_text_is_one_field(tmp_path: Path) -> None:
    # a cell typed as "Ani, S.Pd" guru: the quotes open the cell, text follows the closing
    # one; the field count still matches the header, so a split would shift in silence
    data = b'No HP,Nama,Kota\r\n08123456700,Budi,Depok\r\n08123456701,"Ani, S.Pd" guru,Bogor\r\n'
    reader = _open(_write(tmp_path, "guru.csv", data))
    assert pl.concat(list(reader.batches())).rows() == [
        (1, "08123456700", "Budi", "Depok"),
        (2, "08123456701", "Ani, S.Pd guru", "Bogor"),
    ]
    expected = [*csv.reader(io.StringIO(data.decode(), newline=""))][2]
    assert expected == ["08123456701", "Ani, S.Pd guru", "Bogor"]  # what the csv module reads
    assert len(reader.info.notes) == 1
    assert "(line 3, column 'Nama')" in reader.info.notes[0]


def test_what_is_checked_is_what_is_read_on_a_big_quoted_file(tmp_path: Path) -> None:
    # many rows, past a block, a stray quote far down: the check and the reader are one parser
    rows = [f'08{i:09d},"Nama {i}\nbaris dua",kota' for i in range(60_000)]
    rows[25_000] = '0899,TV 32",kota'
    rows[26_000] = '0898,"Joko" Widodo,kota'
    text = "Phone,Name,City\n" + "\n".join(rows) + "\n"
    assert len(text) > 2 * BLOCK_CHARS
    path = _write(tmp_path, "big.csv", text.encode())
    reader = _open(path, batch_size=4_096)
    df = pl.concat(list(reader.batches()))
    assert reader.rows == df.height == 60_000
    assert df["Name"][0] == "Nama 0\nbaris dua"
    assert df["Name"][59_999] == "Nama 59999\nbaris dua"
    assert df["Name"][25_000] == 'TV 32"'
    assert df["Name"][26_000] == "Joko Widodo"
    assert df["row_number"].to_list() == list(range(1, 60_001))
    assert "(line 52001, column 'Name')" in reader.info.notes[0]  # two lines a row before 25,000


def test_unclosed_quote_is_text_and_the_next_line_still_a_row(tmp_path: Path) -> None:
    reader = _open(_write(tmp_path, "a.csv", b'Phone,Name\n0812,"Budi\n0813,Ani\n'))
    assert pl.concat(list(reader.batches())).rows() == [(1, "0812", '"Budi'), (2, "0813", "Ani")]
    assert reader.info.notes == (
        "1 quote(s) never closed (line 2): each was read as text, and the line's fields split "
        "at the delimiter",
    )


def test_unclosed_quote_mid_file_meeting_a_later_quote_is_text(tmp_path: Path) -> None:
    data = b'Phone,Name,City\n0812,"Budi,Bogor\n0813,Ani,Depok\n0814,"Cici",Bekasi\n'
    df = _read(_write(tmp_path, "a.csv", data))
    assert df.rows() == [
        (1, "0812", '"Budi', "Bogor"),
        (2, "0813", "Ani", "Depok"),
        (3, "0814", "Cici", "Bekasi"),
    ]


def test_a_quoted_field_that_breaks_the_field_count_names_its_line(tmp_path: Path) -> None:
    data = b'Phone,Name,City\n0812,A,B\n0813,"Jl. A, 5",Jakarta,Bogor\n'
    with pytest.raises(InputError, match=r"a\.csv: line 3 has 4 fields but the header"):
        _open(_write(tmp_path, "a.csv", data))


@pytest.mark.parametrize(
    ("first", "sep"), [(b"", b";"), (b",,,", b","), (b";;;", b";"), (b"   ", b"\t"), (b'"",', b",")]
)
def test_blank_lines_before_the_header_are_skipped(
    tmp_path: Path, first: bytes, sep: bytes
) -> None:
    data = first + b"\r\n\r\nPhone;Name;City;X\r\n0812;A;B;C\r\n0813;D;E;F\r\n"
    data = data.replace(b";", sep)
    reader = _open(_write(tmp_path, "a.csv", data))
    assert reader.info.columns == ("Phone", "Name", "City", "X")
    assert reader.info.header_line == 3
    df = pl.concat(list(reader.batches()))
    assert df.rows() == [(1, "0812", "A", "B", "C"), (2, "0813", "D", "E", "F")]


def test_title_row_suggests_header_row(tmp_path: Path) -> None:
    data = b"Daftar Pelanggan 2024\n\nNo HP,Nama,Kota\n0812,A,B\n"
    with pytest.raises(InputError, match=r"line 1 looks like a title and line 3 like the header: "
                       r"pass --header-row 3"):  # fmt: skip
        _open(_write(tmp_path, "a.csv", data))
    titled = b"Daftar Pelanggan,,\nNo HP,Nama,Kota\n0812,A,B\n"
    message = (
        r"has no column name but holds data; name it; line 1 "
        r"looks like a title and line 2 like the header: pass --header-row 2"
    )
    with pytest.raises(InputError, match=message):
        _open(_write(tmp_path, "b.csv", titled))
    reader = _open(_write(tmp_path, "c.csv", titled), header_row=2)
    assert reader.info.columns == ("No HP", "Nama", "Kota")
    assert pl.concat(list(reader.batches())).rows() == [(1, "0812", "A", "B")]


def test_header_row_skips_junk_with_quotes(tmp_path: Path) -> None:
    data = b'Report "Q1\nexported by "x"\nPhone,Name\n0812,A\n'
    df = _read(_write(tmp_path, "a.csv", data), header_row=3)
    assert df.rows() == [(1, "0812", "A")]


def test_header_row_past_the_end(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"line 9 has only blank lines"):
        _open(_write(tmp_path, "a.csv", b"Phone\n1\n"), header_row=9)


def test_cr_only_line_endings(tmp_path: Path) -> None:
    data = b'Phone,Name,Note\r0812,A,"two\rlines"\r0813,B,x\r'
    df = _read(_write(tmp_path, "mac.csv", data))
    assert df.rows() == [(1, "0812", "A", "two\rlines"), (2, "0813", "B", "x")]


def test_excel_sep_line(tmp_path: Path) -> None:
    reader = _open(_write(tmp_path, "a.csv", b"sep=;\r\nPhone;Name,Nick\r\n0812;A,a\r\n"))
    assert reader.info.delimiter == ";"
    assert reader.info.header_line == 2
    assert any("sep=;" in note for note in reader.info.notes)
    assert pl.concat(list(reader.batches())).rows() == [(1, "0812", "A,a")]


@pytest.mark.parametrize("quote", [b"", b'"'])
def test_short_rows_are_padded_with_a_note_naming_their_lines(
    tmp_path: Path, quote: bytes
) -> None:
    data = b"Phone,Name,City,Note\n0812,A\n0813,B,C,D\n0814,E,F\n0815,G,H,,,\n"
    reader = _open(_write(tmp_path, "a.csv", data.replace(b"B", quote + b"B" + quote)))
    assert reader.info.notes == (
        "2 row(s) had fewer fields than the header (lines 2, 4); their missing cells were "
        "read as empty",
        "1 row(s) had extra empty fields at the end; they were dropped",
    )
    df = pl.concat(list(reader.batches()))
    assert df.rows() == [
        (1, "0812", "A", None, None),
        (2, "0813", "B", "C", "D"),
        (3, "0814", "E", "F", None),
        (4, "0815", "G", "H", None),
    ]


def test_extra_non_empty_fields_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"a\.csv: line 3 has 3 fields but the header"):
        _open(_write(tmp_path, "a.csv", b"Phone,Name\n0812,A\n0813,B,C\n"))


def test_cp1252_detected_saying_what_else_it_could_be(tmp_path: Path) -> None:
    text = "Phone;Nombre;Ciudad\n+52 1;José Müller;Bogotá\n+52 2;Ñandú Peña;Medellín\n"
    reader = _open(_write(tmp_path, "a.csv", text.encode("cp1252")))
    assert reader.info.encoding == "cp1252"
    assert reader.info.notes[0].startswith(
        "not UTF-8; read as cp1252, the Windows code page (charset-normalizer finds "
    )
    assert "pass --encoding if names look wrong" in reader.info.notes[0]
    assert pl.concat(list(reader.batches()))["Nombre"].to_list() == ["José Müller", "Ñandú Peña"]


def test_encoding_option_wins(tmp_path: Path) -> None:
    text = "Phone;Name\n1;Ωmega\n".encode("cp1253")  # Greek: a detector may say otherwise
    df = _read(_write(tmp_path, "a.csv", text), encoding="cp1253")
    assert df["Name"].to_list() == ["Ωmega"]
    utf8 = _write(tmp_path, "b.csv", "Phone;Name\n1;José\n".encode())
    assert _read(utf8, encoding="latin-1")["Name"].to_list() == ["JosÃ©"]  # asked for


def test_utf8_with_bad_bytes_names_the_lines(tmp_path: Path) -> None:
    data = "Phone,Name\n1,José\n2,Zoë\n3,Ana\n".encode() + b"4,Ren\xe9\n5,Lo\xefc\n"
    with pytest.raises(InputError, match=r"a\.csv: the file is UTF-8 but 2 byte\(s\) are not "
                       r"\(line 5, 6\).*--encoding"):  # fmt: skip
        _open(_write(tmp_path, "a.csv", data))


def test_the_column_of_text_after_a_quote_is_named_past_quoted_delimiters(tmp_path: Path) -> None:
    data = b'No HP;Alamat;Nama\n0812;"Jl. A; No 5";"Ani; S.Pd" guru\n'
    reader = _open(_write(tmp_path, "a.csv", data))
    rows = pl.concat(list(reader.batches())).rows()
    assert rows == [(1, "0812", "Jl. A; No 5", "Ani; S.Pd guru")]
    assert "(line 2, column 'Nama')" in reader.info.notes[0]


@pytest.mark.parametrize("eol", ["\r", "\r\n", "\n"])
def test_blocks_of_lines_read_as_the_csv_module_reads_the_whole_file(
    tmp_path: Path, eol: str
) -> None:
    # past a block, so records with line breaks inside cross the blocks' edges
    rng = random.Random(3)
    cells = ["x", f'"two{eol}lines"', '"a, b"', '"q""uote"', "", 'TV 32"']
    rows = (f'08{i:09d},"Nama {i}",{rng.choice(cells)}' for i in range(60_000))
    lines = ["Phone,Name,Note", *rows]
    text = eol.join(lines) + eol
    assert len(text) > BLOCK_CHARS
    path = tmp_path / "a.csv"
    path.write_text(text, newline="")
    got: list[list[str]] = []
    with path.open(newline="") as f:
        for chunk in records(f, ","):
            assert not chunk.after_quote
            assert not chunk.unclosed
            got += chunk.rows
    assert got == list(csv.reader(io.StringIO(text, newline=""), strict=True))
