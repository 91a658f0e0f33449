"""What every input format shares: header checks, and raw cells -> the frames the source yields.

A format reader (``textfile``, ``sheets``) finds the header, checks it with ``check_headers``
and ``empty_named``, and reads raw text frames; ``numbered`` turns those into the frames
``SourceReader.batches()`` yields: blank rows dropped, formula escaping undone (the header's
too, in ``check_headers``), placeholder columns dropped, and ``row_number`` (Int64) first,
counted over non-blank data rows.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import polars as pl

from importer.errors import InputError
from importer.formula import restore, restore_expr
from importer.read.records import FAILURE_COLUMNS, SOURCE_ROW, SourceInfo

DROP = "\x00empty"  # placeholder name prefix for a column the reader drops
_LOOKS_LIKE_DATA = re.compile(r"^\+?[\d\s().\-/]{6,}$|^[^\s@]+@[^\s@]+\.[^\s@]+$")

Where = Callable[[int], str]  # column index -> where a person finds it ("line 1, column 2")


class Opened(NamedTuple):
    """A checked input, as a format reader hands it to ``source``."""

    info: SourceInfo
    rows: int | None  # non-blank data rows, when the check pass counted them
    read: Callable[[], Iterator[pl.DataFrame]]  # each call reads the file again
    tmpdir: tempfile.TemporaryDirectory[str] | None = None  # removed by SourceReader.close()


def kept_columns(names: list[str]) -> tuple[str, ...]:
    """The column names a reader yields (placeholders left out)."""
    return tuple(n for n in names if not n.startswith(DROP))


def check_headers(*, path: Path, raw: list[str], where: Where) -> list[str]:
    """Trim headers and undo their formula escaping (as the cells'); refuse duplicates and a
    header line that looks like data."""
    names = restore([h.strip() for h in raw])
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
    if all(c in seen for c in FAILURE_COLUMNS):  # our failures.csv, fed back
        carried = SOURCE_ROW in seen  # a retry's failures already name the first file's rows
        return [
            SOURCE_ROW if n == "row_number" and not carried
            else f"{DROP}{i}" if n in FAILURE_COLUMNS else n
            for i, n in enumerate(names)
        ]  # fmt: skip
    for reserved in ("row_number", SOURCE_ROW):
        if reserved in seen:
            raise InputError(
                f"{path}: {where(seen[reserved])}: the column name {reserved!r} is reserved "
                "for the importer's own row numbers; rename the column"
            )
    return names


def header_hint(
    header_at: int, header: list[str], early: list[tuple[int, list[str]]], unit: str = "line"
) -> str:
    """When the header looks like a title row: "; ... pass --header-row N" naming the line
    (or sheet row) among ``early`` (the first rows under it) that looks like the header."""
    named = sum(1 for cell in header if cell and cell.strip())
    for at, cells in early:
        values = [c.strip() if c else "" for c in cells]
        while values and not values[-1]:
            values.pop()
        if (
            len(values) >= 2
            and len(values) > named
            and all(values)
            and not any(_LOOKS_LIKE_DATA.search(v) for v in values)
        ):
            return (
                f"; {unit} {header_at} looks like a title and {unit} {at} like the header: "
                f"pass --header-row {at}"
            )
    return ""


def empty_named(*, path: Path, names: list[str], has_data: list[bool], where: Where) -> list[str]:
    """Give empty-header columns a placeholder (dropped later) or refuse them if they hold data."""
    out = []
    for i, name in enumerate(names):
        if name:
            out.append(name)  # a real name, or a report column's placeholder
        elif has_data[i]:
            raise InputError(f"{path}: {where(i)} has no column name but holds data; name it")
        else:
            out.append(f"{DROP}{i}")
    return out


def _finish(frame: pl.DataFrame, start: int) -> pl.DataFrame:
    """Drop blank rows, undo formula escaping, and number the rows from ``start``."""
    frame = frame.select(c for c in frame.columns if not c.startswith(DROP))
    if frame.width:
        blank = pl.all_horizontal(
            pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in frame.columns
        )
        frame = frame.filter(~blank)
    frame = frame.with_columns(restore_expr(c) for c in frame.columns)
    numbers = pl.int_range(start, start + frame.height, dtype=pl.Int64, eager=True)
    return frame.insert_column(0, numbers.alias("row_number"))


def numbered(frames: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """Finished frames, numbered on from one another; frames left empty are skipped."""
    start = 1
    for raw in frames:
        out = _finish(raw, start)
        start += out.height
        if out.height:
            yield out
