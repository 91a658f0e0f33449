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
else it is an error.

This module picks the format and owns the reader; ``textfile`` reads CSV/TSV, ``sheets``
Parquet and XLSX, and ``frames`` holds what they share (header checks, row numbering).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator

import polars as pl

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.frames import Opened
from importer.read.records import SourceInfo
from importer.read.sheets import open_parquet, open_xlsx
from importer.read.text import TextFormat, open_text

_TEXT: dict[str, TextFormat] = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv"}
_TABLES = {".parquet": open_parquet, ".pq": open_parquet, ".xlsx": open_xlsx, ".xlsm": open_xlsx}


class SourceReader:
    """An opened, checked input file. ``batches()`` may be iterated more than once."""

    def __init__(self, *, opened: Opened) -> None:
        self.info: SourceInfo = opened.info
        self.rows = opened.rows  # non-blank data rows found by the check pass (None: not counted)
        self._read = opened.read
        tmpdir = opened.tmpdir
        self._finalizer = weakref.finalize(self, tmpdir.cleanup) if tmpdir else None

    def batches(self) -> Iterable[pl.DataFrame]:
        """Frames of at most ``batch_size`` rows; each ``iter()`` reads the file again."""
        return _Batches(self)

    def close(self) -> None:
        """Remove the transcoded temporary copy, if one was made."""
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


FIRST_BATCH_ROWS = 1_000


class _Batches:
    def __init__(self, reader: SourceReader) -> None:
        self._reader = reader  # keeps the reader (and so its temporary copy) alive

    def __iter__(self) -> Iterator[pl.DataFrame]:
        frames = self._reader._read()
        first = next(frames, None)
        if first is None:
            return
        # a small first batch: the run starts sending after ~1,000 rows are validated, not
        # after the first whole batch of 50,000
        yield first.slice(0, FIRST_BATCH_ROWS)
        if first.height > FIRST_BATCH_ROWS:
            yield first.slice(FIRST_BATCH_ROWS)
        yield from frames


def open_source(*, options: InputOptions) -> SourceReader:
    """Detect the format, check the file, and return a reader; ``InputError`` if unusable."""
    path = options.path
    suffix = path.suffix.lower()
    if suffix not in _TEXT and suffix not in _TABLES:
        known = " ".join(sorted([*_TEXT, *_TABLES]))
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
    if suffix in _TEXT:
        return SourceReader(opened=open_text(path=path, fmt=_TEXT[suffix], options=options))
    return SourceReader(opened=_TABLES[suffix](path=path, options=options))
