"""Typed tables: Parquet and XLSX, read as text.

Numbers stored as numbers become their digits: ``6281234567890.0`` -> ``"6281234567890"``
(a float that is a whole number is printed as an integer, anything else as polars prints
it). Parquet is scanned in batches; an XLSX sheet is read whole (a sheet holds at most ~1M
rows) through fastexcel as strings, its first non-empty row is the header, then it is sliced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.frames import Opened, check_headers, empty_named, kept_columns, numbered
from importer.read.records import SourceInfo

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
    try:
        schema = pl.scan_parquet(path).collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from exc
    for name, dtype in schema.items():
        if dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
            raise InputError(f"{path}: column {name!r} has type {dtype}, which is not text")

    def where(i: int) -> str:
        return f"column {i + 1}"

    names = check_headers(path=path, raw=list(schema), where=where)
    names = empty_named(path=path, names=names, has_data=[True] * len(names), where=where)
    exprs = [
        as_text(old, dtype).alias(new)
        for (old, dtype), new in zip(schema.items(), names, strict=True)
    ]
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    info = SourceInfo(path=path, format="parquet", columns=kept_columns(names))

    def read() -> Iterator[pl.DataFrame]:
        scan = pl.scan_parquet(path).select(exprs)
        try:
            yield from numbered(iter(scan.collect_batches(chunk_size=options.batch_size)))
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{path}: cannot read the file: {exc}") from exc

    return Opened(info=info, rows=int(rows), read=read)


# --- XLSX ---------------------------------------------------------------------------------


def _column_letter(i: int) -> str:
    letters = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _load_sheet(path: Path, wanted: str | None) -> tuple[str, pl.DataFrame]:
    """(sheet name, every cell as text, no header) via fastexcel; ``InputError`` if unreadable."""
    import fastexcel

    try:
        book: Any = fastexcel.read_excel(str(path))
        sheets: list[str] = list(book.sheet_names)
        if wanted is not None and wanted not in sheets:
            raise InputError(
                f"{path}: no sheet named {wanted!r}; the sheets are "
                + ", ".join(repr(s) for s in sheets)
            )
        sheet = wanted if wanted is not None else sheets[0]
        table: pl.DataFrame = book.load_sheet(sheet, header_row=None, dtypes="string").to_polars()
    except InputError:
        raise
    except Exception as exc:  # fastexcel raises its own exception tree
        raise InputError(f"{path}: not a readable XLSX file: {exc}") from exc
    return sheet, table


def open_xlsx(*, path: Path, options: InputOptions) -> Opened:
    """Load the sheet, find and check its header row, and slice the rest into batches."""
    sheet, table = _load_sheet(path, options.sheet)
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

    names = check_headers(path=path, raw=[head[c] or "" for c in cells], where=where)
    has_data = [bool(data[c].drop_nulls().str.strip_chars().str.len_chars().sum()) for c in cells]
    names = empty_named(path=path, names=names, has_data=has_data, where=where)
    data = data.rename(dict(zip(cells, names, strict=True)))
    info = SourceInfo(path=path, format="xlsx", sheet=sheet, columns=kept_columns(names))
    size = options.batch_size

    def read() -> Iterator[pl.DataFrame]:
        return numbered(data.slice(i, size) for i in range(0, data.height, size))

    return Opened(info=info, rows=None, read=read)
