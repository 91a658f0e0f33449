"""Typed tables: Parquet and XLSX, read as text.

Numbers stored as numbers become their digits: ``6281234567890.0`` -> ``"6281234567890"``
(a float that is a whole number is printed as an integer, anything else as polars prints
it). Parquet is read a batch at a time (pyarrow's batch reader: memory stays flat). A
workbook (XLSX, XLSM, XLSB, XLS, ODS) sheet is read whole (a sheet holds at most ~1M rows)
through fastexcel as strings, from the sheet's row 1 and with each column's own letter, so
``--header-row`` and the cells messages name are the sheet's; its first non-empty row is the
header (or ``--header-row``), then it is sliced. Dates read as ``2024-01-15``, times as
``14:30``. A formula error cell (fastexcel reads it as empty and lists it apart) reads as
Excel shows it, ``#N/A``, ``#DIV/0!``, ...: validation names it (``formula_error``). A
formula cell without a saved value reads as empty, and a note names its cells.

fastexcel (calamine, in Rust) runs in a child process: whatever it does on a damaged workbook
(an exception, a Rust panic, an allocation failure that aborts its process) is an
``InputError`` "cannot read this workbook" with its one-line reason, and what it logs or
prints never reaches the terminal raw.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from xml.etree import ElementTree

import polars as pl

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.frames import (
    Opened,
    check_headers,
    empty_named,
    header_hint,
    kept_columns,
    numbered,
)
from importer.read.records import SourceInfo

_EARLY = 200  # rows looked at for a title row
_LIBRARY_LOGGERS = ("fastexcel", "calamine")  # the workbook library's loggers (pyo3-log)
_PRINTED_KEPT = 64 << 10  # bytes of what the reading process printed that are looked at
_SHOWN = 5  # cells named in a note
_CHUNK = 1 << 20
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")  # a formula element in a sheet's XML
_BACKTRACE = ("thread ", "stack backtrace", "note: ", "at ")  # a Rust panic's other lines

# --- Parquet ------------------------------------------------------------------------------


def as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    """A column of any scalar type as text; whole-number floats as their digits."""
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


def open_parquet(*, path: Path, options: InputOptions) -> Opened:
    """Check the schema (scalar columns only) and the header, and read in batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as book:
            rows = book.metadata.num_rows
            schema = pl.DataFrame(book.schema_arrow.empty_table()).schema
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    for name, dtype in schema.items():
        if dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
            raise InputError(f"{path}: column {name!r} has type {dtype}, which is not text")

    def where(i: int) -> str:
        return f"column {i + 1}"

    names = check_headers(path=path, raw=list(schema), where=where)
    names = empty_named(path=path, names=names, has_data=[True] * len(names), where=where)
    info = SourceInfo(path=path, format="parquet", columns=kept_columns(names))

    def as_frames(book: Any) -> Iterator[pl.DataFrame]:
        # one thread, nothing read ahead (pre_buffer=False): memory stays at about one row
        # group; with pyarrow's defaults it grew with the file
        for batch in book.iter_batches(batch_size=options.batch_size, use_threads=False):
            frame = pl.DataFrame(batch)
            yield frame.select(
                as_text(old, dtype).alias(new)
                for (old, dtype), new in zip(frame.schema.items(), names, strict=True)
            )

    def read() -> Iterator[pl.DataFrame]:
        try:
            with pq.ParquetFile(path, pre_buffer=False) as book:
                yield from numbered(as_frames(book))
        except (pa.ArrowException, pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(f"{path}: cannot read the file: {exc}") from exc

    return Opened(info=info, rows=int(rows), read=read)


# --- workbooks: XLSX, XLSM, XLSB, XLS, ODS -----------------------------------------------

# date and time cells as fastexcel writes them as text -> as a person writes them
_DATE = r"^(\d{4}-\d{2}-\d{2}) 00:00:00(?:\.0+)?$"
_TIME = r"^1899-12-3[01] (\d{2}:\d{2}(?::\d{2})?)(?:\.0+)?$"  # a time alone: day 0 of Excel
_ZERO_SECONDS = r"^(\d{4}-\d{2}-\d{2} |)(\d{2}:\d{2}):00$"


def _column_letter(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _readable(expr: pl.Expr) -> pl.Expr:
    """Dates as ``2024-01-15``, times as ``14:30``, date-times without ``:00`` seconds."""
    return expr.str.replace(_DATE, "$1").str.replace(_TIME, "$1").str.replace(_ZERO_SECONDS, "$1$2")


def _has_data(book: Any, name: str) -> bool:
    sheet = book.load_sheet(name, header_row=None, dtypes="string", n_rows=50)
    table: pl.DataFrame = sheet.to_polars()
    if table.width == 0 or table.height == 0:
        return False
    return bool(table.select(pl.any_horizontal(pl.all().str.strip_chars() != "").any()).item())


def _visible(book: Any, name: str) -> bool:
    # dtypes given: the library guesses no column type (a guess it cannot make, it logs)
    return bool(
        book.load_sheet(name, header_row=None, n_rows=1, dtypes="string").visible == "visible"
    )


def _pick_sheet(path: Path, book: Any, wanted: str | None) -> tuple[str, list[str]]:
    """(the sheet to read, the other visible sheets that hold data)."""
    sheets: list[str] = list(book.sheet_names)
    listed = ", ".join(repr(s) for s in sheets)
    if wanted is not None:
        if wanted.strip().isdigit():
            at = int(wanted)
            if not 1 <= at <= len(sheets):
                raise InputError(
                    f"{path}: --sheet {wanted}: the workbook has {len(sheets)} sheet(s): {listed}"
                )
            chosen = sheets[at - 1]
        else:
            hits = [s for s in sheets if s.casefold() == wanted.strip().casefold()]
            if not hits:
                raise InputError(f"{path}: no sheet named {wanted!r}; the sheets are {listed}")
            chosen = hits[0]
    else:
        visible = [s for s in sheets if _visible(book, s)]
        chosen = (visible or sheets)[0]
    others = [
        s for s in sheets
        if s != chosen
        and _visible(book, s)
        and _has_data(book, s)
    ]  # fmt: skip
    return chosen, others


# calamine's names for an error value, as fastexcel's cell errors word them -> as Excel shows it
_ERRORS = {
    "Div0": "#DIV/0!", "NA": "#N/A", "Name": "#NAME?", "Null": "#NULL!", "Num": "#NUM!",
    "Ref": "#REF!", "Value": "#VALUE!", "GettingData": "#GETTING_DATA",
}  # fmt: skip
_ERROR_DETAIL = re.compile(r"\bError\((\w+)\)")


class _Sheet(NamedTuple):
    name: str
    table: pl.DataFrame  # every cell as text, no header; row i is the sheet's row i + 1
    letters: list[str]  # each column's letter in the sheet
    others: list[str]  # the other visible sheets that hold data


def _with_errors(table: pl.DataFrame, errors: Any) -> pl.DataFrame:
    """The error cells fastexcel read as null (and listed) written as Excel shows them."""
    by_column: dict[int, tuple[list[int], list[str]]] = {}
    for error in errors.errors if errors is not None else ():
        found = _ERROR_DETAIL.search(str(error.detail))
        if found is None or found.group(1) not in _ERRORS:
            continue  # not an error value: a cell fastexcel could not read as text
        row, column = error.position
        rows, texts = by_column.setdefault(column, ([], []))
        rows.append(row)
        texts.append(_ERRORS[found.group(1)])
    if not by_column:
        return table
    columns = table.get_columns()
    for column, (rows, texts) in by_column.items():
        columns[column] = columns[column].clone().scatter(rows, texts)
    return pl.DataFrame(columns)


@contextmanager
def _logged() -> Iterator[list[str]]:
    """Collect the workbook library's log records (fastexcel and calamine log through
    ``logging``, "Could not determine dtype for column 3, ...") instead of letting Python
    print them raw."""
    said: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Collect(logging.WARNING)
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    kept = [(log.handlers[:], log.propagate) for log in loggers]
    for log in loggers:
        log.handlers, log.propagate = [handler], False
    try:
        yield said
    finally:
        for log, (handlers, propagate) in zip(loggers, kept, strict=True):
            log.handlers, log.propagate = handlers, propagate


def _reason(text: str) -> str | None:
    """The first line of ``text`` that is not part of a Rust panic's backtrace."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(_BACKTRACE)), None)


def _load_sheet(path: Path, wanted: str | None, kind: str) -> tuple[_Sheet, list[str]]:
    """The chosen sheet's cells, and the warnings the workbook library logged, read by a
    child process (``_child``): nothing the library does on a damaged workbook can end,
    hang up or print into this one (a Rust panic, an allocation failure that aborts the
    process). ``InputError`` if unreadable, with the library's one-line reason."""
    with tempfile.TemporaryDirectory(prefix="kirim-import-book-") as tmp:
        out = Path(tmp)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding ``importer``
        argv = [sys.executable, "-I", "-c", _CHILD, root, str(path), kind, str(out)]
        done = subprocess.run(  # noqa: S603 (this interpreter, our own code, no shell)
            [*argv, *([] if wanted is None else [wanted])], capture_output=True, check=False
        )
        answer = out / "answer.json"
        if done.returncode != 0 or not answer.exists():  # it aborted (or worse): say why
            why = _reason(done.stderr[-_PRINTED_KEPT:].decode("utf-8", "replace"))
            if why is None and done.returncode < 0:
                why = f"it ended the process with {signal.Signals(-done.returncode).name}"
            raise InputError(_cannot(path, kind, why or f"exit {done.returncode}"))
        said = json.loads(answer.read_text(encoding="utf-8"))
        if "error" in said:
            raise InputError(said["error"])
        table = pl.read_ipc(out / "table.arrow")  # mapped: the file may go once read
    sheet = _Sheet(said["sheet"], table, said["letters"], said["others"])
    return sheet, said["warnings"]


_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from importer.read.sheets import _child; raise SystemExit(_child(sys.argv[2:]))"
)


def _child(argv: list[str]) -> int:
    """In the child process: load the sheet (``path kind out [sheet]``) and write it to
    ``out/table.arrow`` with ``out/answer.json`` (sheet, letters, others, warnings), or the
    ``InputError`` message to ``answer.json``."""
    path, kind, out = Path(argv[0]), argv[1], Path(argv[2])
    wanted = argv[3] if len(argv) > 3 else None
    try:
        sheet, warnings = _load_here(path, wanted, kind)
    except InputError as exc:
        answer: dict[str, Any] = {"error": str(exc)}
    else:
        sheet.table.write_ipc(out / "table.arrow")
        answer = {
            "sheet": sheet.name, "letters": sheet.letters, "others": sheet.others,
            "warnings": warnings,
        }  # fmt: skip
    (out / "answer.json").write_text(json.dumps(answer), encoding="utf-8")
    return 0


def _cannot(path: Path, kind: str, why: str) -> str:
    return (
        f"{path}: cannot read this workbook ({kind.upper()}; the workbook library said: {why}); "
        "it may be damaged: open it in a spreadsheet program and save it again"
    )


def _load_here(path: Path, wanted: str | None, kind: str) -> tuple[_Sheet, list[str]]:
    """The chosen sheet's cells via fastexcel, and the warnings it logged; ``InputError``
    if unreadable, whatever the library raised (a Rust panic, pyo3's ``PanicException``,
    is a ``BaseException``)."""
    import fastexcel

    failed: BaseException | None = None
    with _logged() as said:
        try:
            book: Any = fastexcel.read_excel(str(path))
            sheet, others = _pick_sheet(path, book, wanted)
            # skip_rows=0: the rows above the used range too, so row i is the sheet's row i + 1
            loaded = book.load_sheet(sheet, header_row=None, dtypes="string", skip_rows=0)
            batch, errors = loaded.to_arrow_with_errors()
            letters = [_column_letter(c.absolute_index) for c in loaded.available_columns()]
            table = _with_errors(pl.DataFrame(batch), errors)
        except (InputError, KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # fastexcel's own exception tree, and a Rust panic
            failed = exc
    if failed is not None:
        why = _reason(str(failed)) or type(failed).__name__
        raise InputError(_cannot(path, kind, why)) from None
    return _Sheet(sheet, table, letters, others), said


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _sheet_member(book: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip member of ``sheet``'s XML in an XLSX/XLSM, from the workbook's sheet list and
    its relationships."""
    # the standard library's parser over expat >= 2.4.1 refuses entity bombs and fetches no
    # external entity (Python's "XML vulnerabilities" table): safe on a user's file
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))  # noqa: S314
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))  # noqa: S314
    rid = next(
        (
            value for el in workbook.iter() if _local(el.tag) == "sheet" and el.get("name") == sheet
            for key, value in el.attrib.items() if _local(key) == "id"
        ),
        None,
    )  # fmt: skip
    target = next((el.get("Target") for el in rels.iter() if el.get("Id") == rid), None)
    if rid is None or target is None:
        return None
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


def _uncalculated(path: Path, sheet: str, kind: str) -> list[str]:
    """The cells of ``sheet`` (XLSX, XLSM) holding a formula without a saved value, as a
    program that writes formulas without calculating them (openpyxl, for one) leaves them:
    fastexcel reads such a cell as empty. A formula Excel computed to text has ``t="str"``
    and is left alone. Read with the standard library's XML parser, only when the sheet
    holds a formula at all; nothing when the workbook cannot be read this way."""
    if kind not in ("xlsx", "xlsm"):
        return []
    found: list[str] = []
    try:
        with zipfile.ZipFile(path) as book:
            member = _sheet_member(book, sheet)
            if member is None:
                return []
            with book.open(member) as xml:
                tail = b""
                while chunk := xml.read(_CHUNK):
                    if _FORMULA.search(tail + chunk):
                        break
                    tail = chunk[-16:]
                else:
                    return []
            with book.open(member) as xml:
                for _, el in ElementTree.iterparse(xml):  # noqa: S314 (see _sheet_member)
                    if _local(el.tag) != "c":
                        continue
                    parts = {_local(child.tag): child for child in el}
                    value = parts.get("v")
                    if "f" in parts and el.get("t") is None and (value is None or not value.text):
                        found.append(el.get("r") or "?")
                    el.clear()
    except (zipfile.BadZipFile, ElementTree.ParseError, KeyError, OSError):
        return []
    return found


def open_workbook(*, path: Path, options: InputOptions, kind: str) -> Opened:
    """Load the sheet, find and check its header row, and slice the rest into batches."""
    (sheet, table, letters, others), warned = _load_sheet(path, options.sheet, kind)
    table = table.with_row_index("_line", offset=1)
    cells = [c for c in table.columns if c != "_line"]
    filled = table.clear()
    if cells:
        filled = table.filter(pl.any_horizontal(pl.col(c).str.strip_chars() != "" for c in cells))
    if filled.is_empty():
        holding = ", ".join(repr(s) for s in others)
        elsewhere = f"; sheets that hold data: {holding} (pick one with --sheet)" if others else ""
        raise InputError(f"{path}: sheet {sheet!r} is empty (it needs a header row){elsewhere}")
    if options.header_row is not None:
        if not 1 <= options.header_row <= table.height:
            raise InputError(
                f"{path}: --header-row {options.header_row}: sheet {sheet!r} has "
                f"{table.height} rows"
            )
        head = table.row(options.header_row - 1, named=True)
    else:
        head = filled.row(0, named=True)
    header_line = int(head["_line"])
    data = table.filter(pl.col("_line") > header_line)
    raw = [head[c] or "" for c in cells]

    def where(i: int) -> str:
        return f"sheet {sheet!r}, cell {letters[i]}{header_line}"

    def hint() -> str:
        if options.header_row is not None:
            return ""
        early = [(int(r[0]), list(r[1:])) for r in data.head(_EARLY).select("_line", *cells).rows()]
        return header_hint(header_line, raw, early, unit="row")

    try:
        names = check_headers(path=path, raw=raw, where=where)
        has_data = [
            bool(data[c].drop_nulls().str.strip_chars().str.len_chars().sum()) for c in cells
        ]
        names = empty_named(path=path, names=names, has_data=has_data, where=where)
    except InputError as exc:
        raise InputError(f"{exc}{hint()}") from None
    data = data.drop("_line").rename(dict(zip(cells, names, strict=True)))
    data = data.with_columns(_readable(pl.col(c)) for c in data.columns)
    notes: tuple[str, ...] = ()
    if others:
        notes = (f"other sheets hold data too: {', '.join(repr(s) for s in others)} (--sheet)",)
    uncalculated = _uncalculated(path, sheet, kind)
    if uncalculated:
        shown = ", ".join(uncalculated[:_SHOWN]) + (" ..." if len(uncalculated) > _SHOWN else "")
        notes = (
            *notes,
            f"sheet {sheet!r}: {len(uncalculated)} formula cell(s) have no saved value ({shown}):"
            " the program that wrote the workbook did not calculate them, so they read as "
            "empty; open it in Excel or LibreOffice and save it again to store their values",
        )
    if warned:
        more = f" (and {len(warned) - 1} more)" if len(warned) > 1 else ""
        notes = (*notes, f"the workbook library warned {len(warned)} time(s): {warned[0]}{more}")
    info = SourceInfo(
        path=path, format=kind, sheet=sheet, columns=kept_columns(names),
        header_line=header_line, notes=notes,
    )  # fmt: skip
    size = options.batch_size

    def read() -> Iterator[pl.DataFrame]:
        return numbered(data.slice(i, size) for i in range(0, data.height, size))

    return Opened(info=info, rows=None, read=read)
