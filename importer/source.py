"""Read the input file (CSV/TSV, Parquet, XLSX) as text, in bounded-memory batches.

``open_source`` checks the whole file first (encoding, header, field counts) so that a bad
file is an ``InputError`` before anything is sent; ``SourceReader.batches()`` then yields
polars frames: ``row_number`` (Int64) followed by every input column as ``pl.String``, values
as read after ``formula.restore``. Empty cells are null.

Row numbers: ``row_number`` is the position among NON-BLANK data rows (the header is not a
row). A blank row is an empty line or a row whose every cell is empty or whitespace (Excel's
``;;;``); it is skipped and not counted. Structural errors name the FILE LINE instead.

Numbers stored as numbers (Parquet, XLSX) become their digits: ``6281234567890.0`` ->
``"6281234567890"``. A column with an empty header is dropped when it holds no data at all,
else it is an error. XLSX sheets are read whole (a sheet holds at most ~1M rows), then sliced.
"""

from __future__ import annotations

import codecs
import csv
import re
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import polars as pl

from importer.records import FAILURE_COLUMNS, InputError, InputOptions, SourceInfo

Format = Literal["csv", "tsv", "parquet", "xlsx"]
_FORMATS: dict[str, Format] = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx", ".xlsm": "xlsx",
}  # fmt: skip
_DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 20
_LOOKS_LIKE_DATA = re.compile(r"^\+?[\d\s().\-/]{6,}$|^[^\s@]+@[^\s@]+\.[^\s@]+$")
_DROP = "\x00empty"  # placeholder name for an empty-header column with no data


def _restore_expr(name: str) -> pl.Expr:
    """``formula.restore`` over a string column: drop a leading ``'`` that ``neutralise`` added."""
    col = pl.col(name)
    strip = col.str.contains(r"^''+[=+\-@\t\r]") | (
        col.str.contains(r"^'[=+\-@\t\r]") & ~col.str.contains(r"^'[+-]?\d+(?:[.,]\d+)?$")
    )
    return pl.when(strip).then(col.str.slice(1)).otherwise(col).alias(name)


class SourceReader:
    """An opened, checked input file. ``batches()`` may be iterated more than once."""

    def __init__(
        self,
        *,
        info: SourceInfo,
        rows: int | None,
        read: Callable[[], Iterator[pl.DataFrame]],
        tmpdir: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.info = info
        self.rows = rows  # non-blank data rows found by the check pass (None: not counted)
        self._read = read
        self._tmpdir = tmpdir
        self._finalizer = weakref.finalize(self, tmpdir.cleanup) if tmpdir else None

    def batches(self) -> Iterable[pl.DataFrame]:
        """Frames of at most ``batch_size`` rows; each ``iter()`` reads the file again."""
        return _Batches(self._read)

    def close(self) -> None:
        """Remove the transcoded temporary copy, if one was made."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Batches:
    def __init__(self, read: Callable[[], Iterator[pl.DataFrame]]) -> None:
        self._read = read

    def __iter__(self) -> Iterator[pl.DataFrame]:
        return self._read()


def open_source(*, options: InputOptions) -> SourceReader:
    """Detect the format, check the file, and return a reader; ``InputError`` if unusable."""
    path = options.path
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = " ".join(sorted(_FORMATS))
        raise InputError(f"{path}: unknown file type {path.suffix!r}; expected one of {known}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with path.open("rb") as f:
            empty = f.read(1) == b""
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror})") from exc
    if empty:
        raise InputError(f"{path}: the file is empty (it needs a header line and data rows)")
    if options.batch_size < 1:
        raise InputError(f"batch size must be at least 1, not {options.batch_size}")
    if fmt == "parquet":
        return _open_parquet(path, options)
    if fmt == "xlsx":
        return _open_xlsx(path, options)
    return _open_text(path, fmt, options)


# --- shared -------------------------------------------------------------------------------


def _check_headers(path: Path, raw: list[str], where: Callable[[int], str]) -> list[str]:
    """Trim headers; refuse duplicates and a header line that looks like data."""
    names = [h.strip() for h in raw]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            continue
        if _LOOKS_LIKE_DATA.search(name):
            raise InputError(
                f"{path}: {where(i)} is {name!r}, which looks like data, not a column name; "
                "the file needs a header line (phone, name, email, ...)"
            )
        if name in seen:
            raise InputError(
                f"{path}: duplicate column name {name!r} ({where(seen[name])} and {where(i)}); "
                "rename one of them"
            )
        seen[name] = i
    if not seen:
        raise InputError(f"{path}: the header line has no column names")
    if all(c in seen for c in FAILURE_COLUMNS):
        return [f"{_DROP}{i}" if n in FAILURE_COLUMNS else n for i, n in enumerate(names)]
    if "row_number" in seen:
        raise InputError(
            f"{path}: {where(seen['row_number'])}: the column name 'row_number' is reserved "
            "for the importer's own row numbers; rename the column"
        )
    return names


def _finish(frame: pl.DataFrame, start: int) -> pl.DataFrame:
    """Drop blank rows, undo formula escaping, and number the rows from ``start``."""
    frame = frame.select(c for c in frame.columns if not c.startswith(_DROP))
    if frame.width:
        blank = pl.all_horizontal(
            pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in frame.columns
        )
        frame = frame.filter(~blank)
    frame = frame.with_columns(_restore_expr(c) for c in frame.columns)
    numbers = pl.int_range(start, start + frame.height, dtype=pl.Int64, eager=True)
    return frame.insert_column(0, numbers.alias("row_number"))


def _numbered(frames: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    start = 1
    for raw in frames:
        out = _finish(raw, start)
        start += out.height
        if out.height:
            yield out


def _empty_named(
    path: Path, names: list[str], has_data: list[bool], where: Callable[[int], str]
) -> list[str]:
    """Give empty-header columns a placeholder (dropped later) or refuse them if they hold data."""
    out = []
    for i, name in enumerate(names):
        if name:
            out.append(name)  # a real name, or a report column's placeholder
        elif has_data[i]:
            raise InputError(f"{path}: {where(i)} has no column name but holds data; name it")
        else:
            out.append(f"{_DROP}{i}")
    return out


# --- CSV / TSV ----------------------------------------------------------------------------


def _line_of(path: Path, offset: int) -> int:
    line = 1
    with path.open("rb") as f:
        done = 0
        while done < offset:
            chunk = f.read(min(_CHUNK, offset - done))
            if not chunk:
                break
            line += chunk.count(b"\n")
            done += len(chunk)
    return line


def _decode_error(path: Path, encoding: str) -> str | None:
    """Stream the file through ``encoding``; describe the first bad byte, or None if valid."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with path.open("rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = offset + exc.start
                bad = exc.object[exc.start : exc.start + 1].hex()
                return f"byte 0x{bad} at offset {at} (line {_line_of(path, at)})"
            if not chunk:
                return None
            offset += len(chunk)


def _choose_encoding(path: Path, wanted: str | None) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    if wanted is None:
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            candidates = ["utf-16"]
        else:
            candidates = ["utf-8-sig", "cp1252"]
    else:
        try:
            name = codecs.lookup(wanted).name
        except LookupError as exc:
            raise InputError(f"unknown encoding {wanted!r} (try utf-8 or cp1252)") from exc
        candidates = ["utf-8-sig" if name in ("utf-8", "utf-8-sig") else name]
    problems = []
    for enc in candidates:
        problem = _decode_error(path, enc)
        if problem is None:
            return enc
        problems.append(f"{_label(enc, b'')}: {problem}")
    hint = "" if wanted else "; pass --encoding with the file's real encoding"
    raise InputError(f"{path}: not valid text in {' or '.join(problems)}{hint}")


def _label(enc: str, head: bytes) -> str:
    if enc == "utf-8-sig":
        return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    return enc


def _detect_delimiter(line: str) -> str:
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties: the first in _DELIMITERS
    return best if counts[best] else ","


def _open_text(path: Path, fmt: Format, options: InputOptions) -> SourceReader:
    encoding = _choose_encoding(path, options.encoding)
    with path.open("rb") as f:
        head = f.read(4)
    delimiter = options.delimiter
    if delimiter is not None and len(delimiter) != 1:
        raise InputError(f"--delimiter must be one character, not {delimiter!r}")
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    target = path
    if encoding != "utf-8-sig":  # polars reads UTF-8 only: transcode in a streaming way
        tmpdir = tempfile.TemporaryDirectory(prefix="kirim-import-")
        target = Path(tmpdir.name) / "input.csv"
        with (
            path.open(encoding=encoding, newline="") as src,
            target.open("w", encoding="utf-8", newline="") as dst,
        ):
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
    try:
        names, delimiter, rows = _check_text(path, target, delimiter, fmt)
    except BaseException:
        if tmpdir:
            tmpdir.cleanup()
        raise
    info = SourceInfo(
        path=path, format=fmt, columns=tuple(n for n in names if not n.startswith(_DROP)),
        encoding=_label(encoding, head), delimiter=delimiter,
    )  # fmt: skip

    def read() -> Iterator[pl.DataFrame]:
        scan = pl.scan_csv(
            target, separator=delimiter, infer_schema=False, new_columns=names,
            truncate_ragged_lines=True, raise_if_empty=False, quote_char='"',
        )  # fmt: skip
        try:
            yield from _numbered(iter(scan.collect_batches(chunk_size=options.batch_size)))
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{path}: cannot read the file: {exc}") from exc

    return SourceReader(info=info, rows=rows, read=read, tmpdir=tmpdir)


def _check_text(
    path: Path, target: Path, delimiter: str | None, fmt: Format
) -> tuple[list[str], str, int]:
    """One streaming pass over the (UTF-8) text: header, field counts, rows. Bounded memory."""
    csv.field_size_limit(1 << 30)
    with target.open(encoding="utf-8-sig", newline="") as f:
        if delimiter is None:
            first = ""
            for line in f:
                if line.strip():
                    first = line
                    break
            delimiter = "\t" if fmt == "tsv" and "\t" in first else _detect_delimiter(first)
            f.seek(0)
        reader = csv.reader(f, delimiter=delimiter, quotechar='"', strict=False)
        header: list[str] | None = None
        header_line = 0
        has_data: list[bool] = []
        watch: list[int] = []
        rows = 0
        last_line = 0
        try:
            for row in reader:
                start, last_line = last_line + 1, reader.line_num
                if not "".join(row).strip():
                    continue
                if header is None:
                    header, header_line = row, start
                    has_data = [False] * len(row)
                    watch = [i for i, cell in enumerate(row) if not cell.strip()]
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{path}: line {start} has {len(row)} fields but the header "
                        f"(line {header_line}) has {len(header)}; check the delimiter "
                        f"{delimiter!r} and quoting"
                    )
                rows += 1
                for i in watch:  # only empty-header columns: must they be kept?
                    has_data[i] = has_data[i] or bool(row[i].strip())
        except csv.Error as exc:
            raise InputError(f"{path}: line {reader.line_num}: cannot parse: {exc}") from exc
    if header is None:
        raise InputError(f"{path}: the file has only blank lines (it needs a header line)")

    def where(i: int) -> str:
        return f"line {header_line}, column {i + 1}"

    names = _check_headers(path, header, where)
    return _empty_named(path, names, has_data, where), delimiter, rows


# --- Parquet ------------------------------------------------------------------------------


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if dtype == pl.String:
        return col
    if dtype.is_float():
        integral = col.is_finite() & (col == col.round(0)) & (col.abs() < 2.0**63)
        return (
            pl.when(integral)
            .then(col.cast(pl.Int64).cast(pl.String))
            .otherwise(col.cast(pl.String))
            .alias(name)
        )
    return col.cast(pl.String).alias(name)


def _open_parquet(path: Path, options: InputOptions) -> SourceReader:
    try:
        schema = pl.scan_parquet(path).collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    for name, dtype in schema.items():
        if dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
            raise InputError(f"{path}: column {name!r} has type {dtype}, which is not text")

    def where(i: int) -> str:
        return f"column {i + 1}"

    raw = list(schema)
    names = _check_headers(path, raw, where)
    names = _empty_named(path, names, [True] * len(names), where)
    exprs = [
        _as_text(old, dtype).alias(new)
        for (old, dtype), new in zip(schema.items(), names, strict=True)
    ]
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    info = SourceInfo(
        path=path, format="parquet", columns=tuple(n for n in names if not n.startswith(_DROP))
    )

    def read() -> Iterator[pl.DataFrame]:
        scan = pl.scan_parquet(path).select(exprs)
        try:
            yield from _numbered(iter(scan.collect_batches(chunk_size=options.batch_size)))
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{path}: cannot read the file: {exc}") from exc

    return SourceReader(info=info, rows=int(rows), read=read)


# --- XLSX ---------------------------------------------------------------------------------


def _column_letter(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _open_xlsx(path: Path, options: InputOptions) -> SourceReader:
    import fastexcel

    try:
        book: Any = fastexcel.read_excel(str(path))
        sheets: list[str] = list(book.sheet_names)
        if options.sheet is not None and options.sheet not in sheets:
            raise InputError(
                f"{path}: no sheet named {options.sheet!r}; the sheets are "
                + ", ".join(repr(s) for s in sheets)
            )
        sheet = options.sheet if options.sheet is not None else sheets[0]
        table: pl.DataFrame = book.load_sheet(sheet, header_row=None, dtypes="string").to_polars()
    except InputError:
        raise
    except Exception as exc:  # fastexcel raises its own exception tree
        raise InputError(f"{path}: not a readable XLSX file: {exc}") from exc
    table = table.with_row_index("_line", offset=1)
    cells = [c for c in table.columns if c != "_line"]
    filled = table.filter(pl.any_horizontal(pl.col(c).str.strip_chars() != "" for c in cells))
    if filled.is_empty():
        raise InputError(f"{path}: sheet {sheet!r} is empty (it needs a header row)")
    head = filled.row(0, named=True)
    header_line = int(head["_line"])
    data = table.filter(pl.col("_line") > header_line).drop("_line")

    def where(i: int) -> str:
        return f"sheet {sheet!r}, cell {_column_letter(i)}{header_line}"

    names = _check_headers(path, [head[c] or "" for c in cells], where)
    has_data = [bool(data[c].drop_nulls().str.strip_chars().str.len_chars().sum()) for c in cells]
    names = _empty_named(path, names, has_data, where)
    data = data.rename(dict(zip(cells, names, strict=True)))
    info = SourceInfo(
        path=path, format="xlsx", sheet=sheet,
        columns=tuple(n for n in names if not n.startswith(_DROP)),
    )  # fmt: skip
    size = options.batch_size

    def read() -> Iterator[pl.DataFrame]:
        return _numbered(data.slice(i, size) for i in range(0, data.height, size))

    return SourceReader(info=info, rows=None, read=read)
