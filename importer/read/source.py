"""Read the input file (CSV/TSV, Parquet, a workbook; compressed or piped) as text, in
bounded-memory batches.

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

This module picks the format (the extension, or ``--format``; the file's first bytes must
agree) and owns the reader; ``text`` reads CSV/TSV (through ``encoding`` and ``parse``),
``sheets`` Parquet and workbooks, and ``frames`` holds what they share (header checks, row
numbering).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, cast

import polars as pl

from importer.errors import InputError
from importer.options import STDIN, InputOptions
from importer.read import location, remote
from importer.read.frames import Opened
from importer.read.records import SourceInfo
from importer.read.sheets import open_parquet, open_workbook
from importer.read.text import TextFormat, open_text

_TEXT: dict[str, TextFormat] = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv"}
_BOOKS = {".xlsx": "xlsx", ".xlsm": "xlsm", ".xlsb": "xlsb", ".xls": "xls", ".ods": "ods"}
_PARQUET = (".parquet", ".pq")
_COMPRESSED = {".gz": "gz", ".bz2": "bz2", ".xz": "xz", ".zst": "zst"}
FORMATS = ("csv", "tsv", "parquet", "xlsx", "xlsm", "xlsb", "xls", "ods")
# what a file's first bytes say it is
_MAGIC = (
    (b"PK\x03\x04", "a ZIP container (an XLSX, XLSM, XLSB or ODS workbook)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (XLS)"),
    (b"PAR1", "a Parquet file"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"BZh", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
)
_KINDS = {".xlsx": 0, ".xlsm": 0, ".xlsb": 0, ".ods": 0, ".xls": 1, ".parquet": 2, ".pq": 2}


_COPY_CHUNK = 1 << 20
_LOCK_FILE_MAX = 4096  # Excel's owner file (~$name.xlsx) holds a user name: 165 bytes


class SourceReader:
    """An opened, checked input file. ``batches()`` may be iterated more than once."""

    def __init__(self, *, opened: Opened) -> None:
        self.info: SourceInfo = opened.info
        self.rows = opened.rows  # non-blank data rows found by the check pass (None: not counted)
        self._read = opened.read
        tmpdir = opened.tmpdir
        self._finalizer = weakref.finalize(self, tmpdir.cleanup) if tmpdir else None
        self._kept: list[Callable[[], None]] = []

    def keep(self, tmpdir: tempfile.TemporaryDirectory[str] | None) -> None:
        """Own one more temporary directory (a decompressed or piped copy of the input)."""
        if tmpdir is not None:
            self._kept.append(weakref.finalize(self, tmpdir.cleanup))

    def batches(self) -> Iterable[pl.DataFrame]:
        """Frames of at most ``batch_size`` rows; each ``iter()`` reads the file again."""
        return _Batches(self)

    def close(self) -> None:
        """Remove the transcoded temporary copy, if one was made."""
        if self._finalizer is not None:
            self._finalizer()
        for finalizer in self._kept:
            finalizer()

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
    """Detect the format, check the file, and return a reader; ``InputError`` if unusable.

    ``-`` reads standard input (``--format`` says what it is); ``.gz``, ``.bz2``, ``.xz`` and
    ``.zst`` files are decompressed to a temporary copy first (the inner extension decides
    the format), streamed: memory stays flat.
    """
    if options.batch_size < 1:
        raise InputError(f"batch size must be at least 1, not {options.batch_size}")
    if options.sql is not None:  # a database query (read/query.py)
        from importer.read.query import open_query

        return SourceReader(opened=open_query(options))
    if options.url is not None:  # a URL: downloaded, then read as a file (read/remote.py)
        return _open_url(options)
    path = options.path
    stdin = path == STDIN or options.stream is not None
    if stdin and options.format is None:
        raise InputError(
            "reading a file object needs format= (csv, tsv, parquet, xlsx, ...)"
            if options.stream
            else "reading standard input ('-') needs --format (csv, tsv, parquet, xlsx)"
        )
    if not stdin and path.is_dir():
        raise InputError(f"{path}: a folder, not a file; give the file in it to import")
    inner, compression = path, None
    if path.suffix.lower() in _COMPRESSED and not stdin:
        compression = _COMPRESSED[path.suffix.lower()]
        inner = path.with_suffix("")
    suffix = f".{options.format}" if options.format else inner.suffix.lower()
    if suffix not in _TEXT and suffix not in _BOOKS and suffix not in _PARQUET:
        known = " ".join(sorted([*_TEXT, *_BOOKS, *_PARQUET, *_COMPRESSED]))
        raise InputError(f"{path}: unknown file type {inner.suffix!r}; expected one of {known}")
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    local = path
    if stdin or compression:
        tmpdir = tempfile.TemporaryDirectory(prefix="kirim-import-in-")
        local = Path(tmpdir.name) / f"input{suffix}"
    try:
        if stdin:
            _copy(options.stream or sys.stdin.buffer, local, path)
        elif compression:
            _decompress(path, compression, local)
        elif not path.is_file():
            raise InputError(f"{path}: no such file")
        reader = _open_local(path=path, local=local, suffix=suffix, options=options)
    except BaseException:
        if tmpdir:
            tmpdir.cleanup()
        raise
    if compression:
        reader.info = replace(reader.info, compression=compression)
    reader.keep(tmpdir)
    return reader


def _open_url(options: InputOptions) -> SourceReader:
    """The URL's local copy, read as the file it names; messages name the URL."""
    assert options.url is not None
    shown = location.shown(options)
    inner = options.path
    if inner.suffix.lower() in _COMPRESSED:
        inner = inner.with_suffix("")
    suffix = f".{options.format}" if options.format else inner.suffix.lower()
    if suffix not in _TEXT and suffix not in _BOOKS and suffix not in _PARQUET:
        known = " ".join(sorted([*_TEXT, *_BOOKS, *_PARQUET, *_COMPRESSED]))
        raise InputError(  # before downloading it
            f"{shown}: unknown file type {inner.suffix!r}; expected one of {known}, or "
            "--format to say what it is"
        )
    tmpdir, local = remote.download(options.url, name=options.path.name)
    try:
        reader = open_source(options=replace(options, path=local, url=None))
    except InputError as exc:
        tmpdir.cleanup()
        raise InputError(str(exc).replace(str(local), shown)) from None
    except BaseException:
        tmpdir.cleanup()
        raise
    reader.info = replace(reader.info, path=options.path, shown=shown)
    reader.keep(tmpdir)
    return reader


def _open_local(*, path: Path, local: Path, suffix: str, options: InputOptions) -> SourceReader:
    """``local`` (the file, or its decompressed copy) read as ``suffix`` says."""
    try:
        with local.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror})") from exc
    if head == b"":
        raise InputError(f"{path}: the file is empty (it needs a header line and data rows)")
    if path.name.startswith("~$") and local.stat().st_size <= _LOCK_FILE_MAX:
        raise InputError(
            f"{path}: this is Excel's lock file of an open workbook (Excel writes '~$' and the "
            f"name while {path.name[2:]!r} is open, and leaves it if it crashes), not the "
            f"workbook: import {path.name[2:]!r} itself, once it is saved"
        )
    suffix = _check_content(path, head, suffix)
    opts = replace(options, path=local) if local != path else options
    try:
        if suffix in _TEXT:
            opened = open_text(path=local, fmt=_TEXT[suffix], options=opts)
        elif suffix in _PARQUET:
            opened = open_parquet(path=local, options=opts)
        else:
            opened = open_workbook(path=local, options=opts, kind=_BOOKS[suffix])
    except InputError as exc:  # messages name the user's file, not our copy
        raise InputError(str(exc).replace(str(local), str(path))) from None
    if local != path:
        opened = opened._replace(info=replace(opened.info, path=path))
    return SourceReader(opened=opened)


def _check_content(path: Path, head: bytes, suffix: str) -> str:
    """The format to read, after checking the first bytes agree with the extension."""
    found = next((what for magic, what in _MAGIC if head.startswith(magic)), None)
    kind = _KINDS.get(suffix)
    if kind == 1 and head.startswith(b"PK\x03\x04"):
        return ".xlsx"  # an .xls that is really an XLSX (Excel opens both)
    if kind == 0 and head.startswith(b"\xd0\xcf\x11\xe0"):
        return ".xls"
    if kind is not None and not head.startswith(_MAGIC[kind][0]):
        what = found or "text (a CSV?)"
        raise InputError(f"{path}: the name says {suffix[1:]} but the file is {what}; rename it")
    if suffix in _TEXT and found:
        raise InputError(
            f"{path}: the name says {suffix[1:]} but the file is {found}, not text; "
            "rename it to its real extension"
        )
    return suffix


def _copy(src: BinaryIO, dst: Path, shown: Path) -> None:
    try:
        with dst.open("wb") as out:
            shutil.copyfileobj(src, out, _COPY_CHUNK)
    except OSError as exc:
        raise InputError(f"{shown}: cannot copy the input ({exc.strerror})") from exc


def _decompressor(compression: str, raw: BinaryIO) -> BinaryIO:
    if compression == "gz":
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "bz2":
        return cast(BinaryIO, bz2.BZ2File(raw, "rb"))
    return cast(BinaryIO, lzma.LZMAFile(raw, "rb"))


def _decompress(path: Path, compression: str, dst: Path) -> None:
    """Stream ``path`` through its decompressor into ``dst``; ``InputError`` when damaged."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with path.open("rb") as raw:
            if compression == "zst":
                import zstandard

                with zstandard.ZstdDecompressor().stream_reader(raw) as src:
                    _copy(cast(BinaryIO, src), dst, path)
                return
            with _decompressor(compression, raw) as src:
                _copy(src, dst, path)
    except InputError:
        raise
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise InputError(f"{path}: not a readable {compression} file ({exc})") from exc
    except Exception as exc:  # zstandard.ZstdError
        raise InputError(f"{path}: not a readable {compression} file ({exc})") from exc
