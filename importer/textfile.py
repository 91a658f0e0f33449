"""CSV and TSV: the encoding, the delimiter, one structural check pass, and batched reading.

The encoding is UTF-8 (BOM or not) or cp1252 when not given (UTF-16 when it has a BOM); a
file that is not UTF-8 is transcoded to a temporary UTF-8 copy, because polars reads UTF-8
only. The delimiter is the most frequent of ``, ; tab |`` outside quotes on the first
non-blank line. The check pass streams the whole file once (bounded memory) and refuses a
row whose field count differs from the header's, naming its FILE LINE.
"""

from __future__ import annotations

import codecs
import csv
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl

from importer.frames import Opened, check_headers, empty_named, kept_columns, numbered
from importer.records import InputError, InputOptions, SourceInfo

TextFormat = Literal["csv", "tsv"]
_DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 20


def open_text(*, path: Path, fmt: TextFormat, options: InputOptions) -> Opened:
    """Choose the encoding and delimiter, check the structure, and read in batches."""
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
        path=path, format=fmt, columns=kept_columns(names), encoding=_label(encoding, head),
        delimiter=delimiter,
    )  # fmt: skip

    def read() -> Iterator[pl.DataFrame]:
        scan = pl.scan_csv(
            target, separator=delimiter, infer_schema=False, new_columns=names,
            truncate_ragged_lines=True, raise_if_empty=False, quote_char='"',
        )  # fmt: skip
        try:
            yield from numbered(iter(scan.collect_batches(chunk_size=options.batch_size)))
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{path}: cannot read the file: {exc}") from exc

    return Opened(info=info, rows=rows, read=read, tmpdir=tmpdir)


# --- encoding -----------------------------------------------------------------------------


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


# --- structure ----------------------------------------------------------------------------


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


def _check_text(
    path: Path, target: Path, delimiter: str | None, fmt: TextFormat
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

    names = check_headers(path=path, raw=header, where=where)
    return empty_named(path=path, names=names, has_data=has_data, where=where), delimiter, rows
