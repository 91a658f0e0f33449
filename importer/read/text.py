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
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl

from importer.errors import InputError
from importer.options import InputOptions
from importer.read.frames import Opened, check_headers, empty_named, kept_columns, numbered
from importer.read.records import SourceInfo

TextFormat = Literal["csv", "tsv"]
_DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 20
_SPACE = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace())  # what str.strip() strips


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
        delimiter = delimiter or _sniff(target, fmt)
        names, rows = _quick_check(path, target, delimiter) or _check_text(path, target, delimiter)
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


def _sniff(target: Path, fmt: TextFormat) -> str:
    """The delimiter, from the first non-blank line."""
    with target.open(encoding="utf-8-sig", newline="") as f:
        first = next((line for line in f if line.strip()), "")
    return "\t" if fmt == "tsv" and "\t" in first else _detect_delimiter(first)


def _quick_check(path: Path, target: Path, delimiter: str) -> tuple[list[str], int] | None:
    """The check pass for a file with no quoting at all (most exports), in polars.

    Every non-blank line must hold as many delimiters as the header line. Returns
    ``(names, rows)``, or None when the careful pass must decide (quotes, a bad line, an
    empty column name): that pass names the line and keeps every message the same.
    """
    with target.open(encoding="utf-8-sig", newline="") as f:
        lines = enumerate(f, start=1)
        at, first = next(((i, s) for i, s in lines if s.replace(delimiter, "").strip()), (0, ""))
    if not at:
        return None
    raw = first.rstrip("\r\n").split(delimiter)
    if not all(cell.strip() for cell in raw):
        return None  # empty header cells: the careful pass checks their columns
    try:
        shapes = _shapes(target, delimiter)
    except pl.exceptions.PolarsError:
        return None  # whatever polars cannot read as lines, the careful pass judges
    if shapes is None or set(shapes) != {len(raw) - 1}:
        return None
    names = check_headers(path=path, raw=raw, where=lambda i: f"line {at}, column {i + 1}")
    return names, shapes[len(raw) - 1] - 1


def _shapes(target: Path, delimiter: str) -> Counter[int] | None:
    """How many non-blank lines hold each count of delimiters, read in blocks of whole lines;
    None as soon as a block is not ``_plain``."""
    found: Counter[int] = Counter()
    with target.open("rb") as f:
        rest = b""
        at_start = True
        while chunk := f.read(_CHUNK * 16):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            block, rest = data[:cut], data[cut:]
            if not _plain(block, at_start=at_start):
                return None
            at_start = at_start and not block
            found.update(_shapes_of(block, delimiter))
    if not _plain(rest, at_start=at_start):
        return None
    found.update(_shapes_of(rest, delimiter))
    return found


def _plain(block: bytes, *, at_start: bool) -> bool:
    """No quote, no unit separator (lines are read with it as the separator), no lone CR, and
    no byte-order mark but the file's first (polars drops one at the start of any block).
    ``block`` holds whole lines (the last one maybe without its newline)."""
    lone_cr = b"\r" in block and block.count(b"\r") != block.count(b"\r\n")
    bom = block.find(codecs.BOM_UTF8, 1 if at_start else 0) != -1
    return not (b'"' in block or b"\x1f" in block or lone_cr or bom)


def _shapes_of(block: bytes, delimiter: str) -> dict[int, int]:
    if not block:
        return {}
    line = pl.col("line")
    lines = pl.read_csv(
        block, has_header=False, separator="\x1f", quote_char=None, infer_schema=False,
        new_columns=["line"], raise_if_empty=False,
    )  # fmt: skip
    blank = line.str.strip_chars(_SPACE + delimiter) == ""  # as the careful pass: str.strip()
    counts = lines.filter(~blank).group_by(line.str.count_matches(delimiter, literal=True)).len()
    return dict(zip(counts["line"], counts["len"], strict=True))


def _check_text(path: Path, target: Path, delimiter: str) -> tuple[list[str], int]:
    """The careful check pass, with the csv module: header, field counts, rows. Bounded memory."""
    csv.field_size_limit(1 << 30)
    with target.open(encoding="utf-8-sig", newline="") as f:
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
    return empty_named(path=path, names=names, has_data=has_data, where=where), rows
