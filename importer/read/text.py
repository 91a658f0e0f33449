"""CSV and TSV: the encoding, the delimiter, where the header is, and one structural pass.

The encoding comes from ``encoding``; a file that is not UTF-8 is transcoded to a temporary
UTF-8 copy (polars reads UTF-8 only). An Excel ``sep=;`` first line sets the delimiter and is
skipped; else the delimiter is the most frequent of ``, ; tab |`` outside quotes on the header
line (the first non-blank line that holds one). The header is ``--header-row`` (the file's
line), else the first line that is not blank (empty, or only delimiters and spaces).

Which parser reads the data is decided once, and the same one both checks and reads:

- a file with no quote at all, no lone CR and one field count on every non-blank line is
  split on newlines and the delimiter by polars (the check counts delimiters per line in
  polars; the reader splits the same lines with quoting off);
- any other file goes through ``parse.records`` (Python's csv module, fed blocks of whole
  lines) in a single pass that checks the structure and writes the rows it read to a
  temporary Arrow spool (frames of ``batch_size`` rows), which is what the run then reads:
  what was checked is what is read, whole.

Rows with fewer fields than the header are padded with empty cells (a note names their
lines); a row with more fields is an error naming its line, unless the extra fields are
empty. Text after a closing quote and quotes that never close are noted with their lines.
"""

from __future__ import annotations

import codecs
import itertools
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

import polars as pl

from importer.errors import InputError
from importer.options import InputOptions
from importer.read import encoding as encodings
from importer.read.frames import (
    Opened,
    check_headers,
    empty_named,
    header_hint,
    kept_columns,
    numbered,
)
from importer.read.parse import records
from importer.read.records import SourceInfo

TextFormat = Literal["csv", "tsv"]
_DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 20
# the quick path reads the file in blocks of whole lines this big, both to check and to read:
# polars' allocator keeps what a block needed, so a bigger block is a higher floor of memory
_BLOCK = 2 << 20
_SPACE = "".join(ch for ch in map(chr, range(0x3001)) if ch.isspace())  # what str.strip() strips
_NO_DELIMITERS = str.maketrans(dict.fromkeys(_DELIMITERS, ""))
_HEAD_LINES = 200  # lines looked at for the delimiter, the header and a title row
_SHOWN = 5  # lines named in a note


class _Layout(NamedTuple):
    delimiter: str
    skip: int  # physical lines before the header search starts (a sep= line, --header-row)
    fixed: bool  # --header-row: the header is line skip + 1, whatever it holds
    sep_line: bool


class _Checked(NamedTuple):
    names: list[str]
    rows: int
    header_line: int
    notes: tuple[str, ...]
    data_at: int = 0  # the quick path: the byte offset where the data lines start


def open_text(*, path: Path, fmt: TextFormat, options: InputOptions) -> Opened:
    """Choose the encoding and delimiter, find the header, check the structure, and read."""
    enc = encodings.choose(path, options.encoding)
    if options.delimiter is not None and len(options.delimiter) != 1:
        raise InputError(f"--delimiter must be one character, not {options.delimiter!r}")
    tmpdir = tempfile.TemporaryDirectory(prefix="kirim-import-")
    try:
        target = path
        if enc.codec != "utf-8-sig":  # polars reads UTF-8 only: transcode in a streaming way
            target = Path(tmpdir.name) / "input.csv"
            with (
                path.open(encoding=enc.codec, newline="") as src,
                target.open("w", encoding="utf-8", newline="") as dst,
            ):
                while chunk := src.read(_CHUNK):
                    dst.write(chunk)
        layout = _layout(path, target, fmt, options)
        spool = Path(tmpdir.name) / "rows"
        quick = _quick_check(path, target, layout)
        checked = quick or _check_and_spool(path, target, layout, spool, options.batch_size)
    except BaseException:
        tmpdir.cleanup()
        raise
    notes = tuple(n for n in (enc.note, *checked.notes) if n)
    if layout.sep_line:
        notes = (f"line 1 'sep={layout.delimiter}' sets the delimiter", *notes)
    info = SourceInfo(
        path=path, format=fmt, columns=kept_columns(checked.names), encoding=enc.label,
        delimiter=layout.delimiter, header_line=checked.header_line, notes=notes,
    )  # fmt: skip
    names = checked.names

    def read_split() -> Iterator[pl.DataFrame]:
        try:
            with target.open("rb") as f:
                f.seek(checked.data_at)
                blocks = _split(f, names, layout.delimiter)
                yield from numbered(_rebatch(blocks, options.batch_size))
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(
                f"{path}: cannot read the file (was it changed since it was checked?)"
            ) from exc

    def read_spool() -> Iterator[pl.DataFrame]:
        rename = {f"c{i}": name for i, name in enumerate(names)}
        parts = sorted(spool.glob("*.arrow")) if spool.exists() else []
        try:
            yield from numbered(pl.read_ipc(p).rename(rename) for p in parts)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputError(f"{path}: cannot read the checked rows back ({exc})") from exc

    read = read_split if quick else read_spool
    return Opened(info=info, rows=checked.rows, read=read, tmpdir=tmpdir)


# --- layout -------------------------------------------------------------------------------


def _head(target: Path) -> list[str]:
    """The first lines of the (UTF-8) file, with their endings (LF, CRLF or a lone CR)."""
    lines = []
    with target.open(encoding="utf-8-sig", newline="") as f:
        for line in f:
            lines.append(line)
            if len(lines) >= _HEAD_LINES:
                break
    return lines


def _is_sep_line(line: str) -> str | None:
    text = line.strip().strip('"')
    return text[4] if len(text) == 5 and text.lower().startswith("sep=") else None


def _layout(path: Path, target: Path, fmt: TextFormat, options: InputOptions) -> _Layout:
    lines = _head(target)
    sep = _is_sep_line(lines[0]) if lines else None
    skip = 1 if sep else 0
    if options.header_row is not None:
        if options.header_row < 1:
            raise InputError(f"--header-row must be 1 or more, not {options.header_row}")
        if options.header_row <= skip:
            raise InputError(f"{path}: --header-row {options.header_row} is the 'sep=' line")
        skip = options.header_row - 1
    delimiter = options.delimiter or sep
    if delimiter is None:
        candidates = lines[skip : skip + 1] if options.header_row else lines[skip:]
        delimiter = "\t" if fmt == "tsv" else _detect_delimiter(candidates)
    return _Layout(delimiter, skip, options.header_row is not None, sep is not None)


def _detect_delimiter(lines: list[str]) -> str:
    """The most frequent delimiter outside quotes on the first line that holds one and is
    not blank (Excel writes ``,,,`` or ``;;;`` for an empty row)."""
    for line in lines:
        if not line.translate(_NO_DELIMITERS).strip():
            continue
        counts = dict.fromkeys(_DELIMITERS, 0)
        quoted = False
        for ch in line:
            if ch == '"':
                quoted = not quoted
            elif not quoted and ch in counts:
                counts[ch] += 1
        best = max(_DELIMITERS, key=lambda d: counts[d])  # ties: the first in _DELIMITERS
        if counts[best]:
            return best
    return ","


def _blank(line: str, delimiter: str) -> bool:
    return not line.replace(delimiter, "").strip()


# --- the quick path: no quotes ------------------------------------------------------------


def _quick_check(path: Path, target: Path, layout: _Layout) -> _Checked | None:
    """The check for a file with no quoting at all (most exports), in polars.

    Every non-blank line after the header must hold as many delimiters as the header line.
    None when ``_check_and_spool`` must decide (quotes, a lone CR, a bad line, an empty
    column name): that pass names the line and keeps every message the same.
    """
    delimiter = layout.delimiter
    with target.open("rb") as f:
        head = f.read(_CHUNK)
    offset, at, first = 0, 0, ""
    for number, raw in enumerate(head.split(b"\n")[:-1], start=1):
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8", errors="replace")
        offset += len(raw) + 1
        if number > layout.skip and (layout.fixed or not _blank(line, delimiter)):
            at, first = number, line
            break
    if not at or not _plain(head[:offset], at_start=True):
        return None
    raw_names = first.rstrip("\r").split(delimiter)
    if not all(cell.strip() for cell in raw_names):
        return None  # empty header cells: the careful pass checks their columns
    try:
        shapes = _shapes(target, delimiter, offset)
    except pl.exceptions.PolarsError:
        return None  # whatever polars cannot read as lines, the careful pass judges
    if shapes is None or not set(shapes) <= {len(raw_names) - 1}:
        return None
    names = check_headers(path=path, raw=raw_names, where=lambda i: f"line {at}, column {i + 1}")
    return _Checked(names, shapes[len(raw_names) - 1], at, (), data_at=offset)


def _shapes(target: Path, delimiter: str, offset: int) -> Counter[int] | None:
    """How many non-blank lines from ``offset`` on hold each count of delimiters, read in
    blocks of whole lines; None as soon as a block is not ``_plain``."""
    found: Counter[int] = Counter()
    with target.open("rb") as f:
        f.seek(offset)
        at_start = offset == 0
        for block in _line_blocks(f):
            if not _plain(block, at_start=at_start):
                return None
            at_start = False
            found.update(_shapes_of(block, delimiter))
    return found


def _line_blocks(f: BinaryIO) -> Iterator[bytes]:
    """The rest of ``f`` in blocks of about ``_BLOCK`` bytes, each cut after a newline (the
    last one maybe without it)."""
    rest = b""
    while chunk := f.read(_BLOCK):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        rest = data[cut:]
    if rest:
        yield rest


def _split(f: BinaryIO, names: list[str], delimiter: str) -> Iterator[pl.DataFrame]:
    """The data lines of an unquoted file (as ``_quick_check`` passed it), block by block:
    each line split on the delimiter, quoting off, every cell text. Each block is parsed under
    a header line of our own, which sets the width (a block may start with a blank line)."""
    header = delimiter.join(f"c{i}" for i in range(len(names))).encode() + b"\n"
    for block in _line_blocks(f):
        yield pl.read_csv(
            header + block, separator=delimiter, infer_schema=False, new_columns=names,
            truncate_ragged_lines=True, raise_if_empty=False, quote_char=None,
        )  # fmt: skip


def _rebatch(frames: Iterator[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """``frames`` cut and joined into frames of ``size`` rows (the last one maybe fewer)."""
    held: list[pl.DataFrame] = []
    rows = 0
    for frame in frames:
        held.append(frame)
        rows += frame.height
        while rows >= size:
            joined = pl.concat(held) if len(held) > 1 else held[0]
            yield joined.slice(0, size)
            rest = joined.slice(size)
            held, rows = [rest], rest.height
    if rows:
        yield pl.concat(held) if len(held) > 1 else held[0]


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


# --- the careful path: the csv module, checked and spooled in one pass -----------------


def _lines(found: list[int]) -> str:
    """``line 3`` or ``lines 3, 9, 12 ...``: the first few of ``found``."""
    shown = ", ".join(map(str, found[:_SHOWN])) + (" ..." if len(found) > _SHOWN else "")
    return f"line {shown}" if len(found) == 1 else f"lines {shown}"


def _cells(found: list[tuple[int, int]], header: list[str]) -> str:
    """``line 3, column 'Nama'; line 9, column 4 ...``: the first few of ``found``."""
    shown = []
    for line, i in found[:_SHOWN]:
        name = header[i].strip() if i < len(header) else ""
        shown.append(f"line {line}, column {name!r}" if name else f"line {line}, column {i + 1}")
    return "; ".join(shown) + (" ..." if len(found) > _SHOWN else "")


def _is_blank(row: list[str]) -> bool:
    return not "".join(row).strip()


class _Careful:
    """What the careful pass has seen of the data rows so far."""

    def __init__(self, width: int, watch: list[int]) -> None:
        self.width = width
        self.watch = watch  # the empty-header columns: do they hold data?
        self.has_data = [False] * width
        self.names = [f"c{i}" for i in range(width)]
        self.rows = 0
        self.padded: list[int] = []
        self.padded_count = 0
        self.trimmed = 0
        self.early: list[tuple[int, list[str]]] = []  # the first rows, to spot a title row

    def frame(
        self, rows: list[list[str]], starts: list[int], problem: Callable[..., str]
    ) -> pl.DataFrame | None:
        """The non-blank ``rows`` as a frame of ``width`` text columns ("" as null); rows
        with extra non-empty fields raise ``problem(line, fields)``."""
        width = self.width
        if len(self.early) < _HEAD_LINES:
            self.early.extend(zip(starts[: _HEAD_LINES - len(self.early)], rows, strict=False))
        lens = list(map(len, rows))
        # a blank row is empty, or its first cell is blank (then looked at whole)
        odd = [i for i, r in enumerate(rows) if not r or not r[0].strip()]
        if lens.count(width) != len(lens):
            odd = sorted({*odd, *(i for i, n in enumerate(lens) if n != width)})
        if odd:
            kept = set(range(len(rows)))
            for i in odd:
                row = rows[i]
                if _is_blank(row):
                    kept.discard(i)
                elif len(row) < width:
                    self.padded_count += 1
                    if len(self.padded) < _SHOWN:
                        self.padded.append(starts[i])
                    rows[i] = row + [""] * (width - len(row))
                elif len(row) > width:
                    if any(cell.strip() for cell in row[width:]):
                        raise InputError(problem(starts[i], len(row)))
                    self.trimmed += 1
                    rows[i] = row[:width]
            if len(kept) != len(rows):
                rows = [rows[i] for i in sorted(kept)]
        if not rows:
            return None
        self.rows += len(rows)
        # the cells in one column, cut into rows (faster than polars reading the row lists)
        cells = pl.Series(list(itertools.chain.from_iterable(rows)), dtype=pl.String)
        frame = cells.reshape((len(rows), width)).arr.to_struct(fields=self.names).struct.unnest()
        frame = frame.with_columns(pl.when(pl.all() != "").then(pl.all()).name.keep())
        for i in self.watch:
            if not self.has_data[i]:
                self.has_data[i] = bool((frame[self.names[i]].str.strip_chars() != "").any())
        return frame


def _check_and_spool(
    path: Path, target: Path, layout: _Layout, spool_dir: Path, batch_size: int
) -> _Checked:
    """The careful pass: header, field counts and rows, read by ``parse.records`` (Python's
    csv module); the rows go to the spool the run reads. Bounded memory."""
    delimiter = layout.delimiter
    after_quote: list[tuple[int, int]] = []
    unclosed: list[int] = []
    with target.open(encoding="utf-8-sig", newline="") as f:
        for _ in range(layout.skip):
            if not f.readline():
                break
        header: list[str] | None = None
        header_line = 0
        rest: tuple[list[list[str]], list[int]] = ([], [])
        chunks = records(f, delimiter, first_line=layout.skip + 1)
        for chunk in chunks:
            after_quote += chunk.after_quote
            unclosed += chunk.unclosed
            for i, row in enumerate(chunk.rows):
                if layout.fixed or not _is_blank(row):
                    header, header_line = row, chunk.starts[i]
                    rest = (chunk.rows[i + 1 :], chunk.starts[i + 1 :])
                    break
            if header is not None:
                break
        if header is None or (layout.fixed and _is_blank(header)):
            what = "line " + str(layout.skip + 1) if layout.fixed else "the file"
            raise InputError(f"{path}: {what} has only blank lines (it needs a header line)")
        after_quote = [(n, i) for n, i in after_quote if n >= header_line]
        unclosed = [n for n in unclosed if n >= header_line]
        seen = _Careful(len(header), [i for i, cell in enumerate(header) if not cell.strip()])

        def where(i: int) -> str:
            return f"line {header_line}, column {i + 1}"

        def hint() -> str:
            return "" if layout.fixed else header_hint(header_line, header, seen.early)

        def problem(line: int, fields: int) -> str:
            return (
                f"{path}: line {line} has {fields} fields but the header (line {header_line}) "
                f"has {seen.width}; check the delimiter {delimiter!r} and quoting{hint()}"
            )

        try:
            check_headers(path=path, raw=header, where=where)
        except InputError as exc:
            raise InputError(f"{exc}{hint()}") from None

        def frames() -> Iterator[pl.DataFrame]:
            first = seen.frame(*rest, problem)
            if first is not None:
                yield first
            for chunk in chunks:
                after_quote.extend(chunk.after_quote)
                unclosed.extend(chunk.unclosed)
                frame = seen.frame(chunk.rows, chunk.starts, problem)
                if frame is not None:
                    yield frame

        spool_dir.mkdir()
        for part, frame in enumerate(_rebatch(frames(), batch_size)):
            frame.write_ipc(spool_dir / f"{part:08d}.arrow")
    names = check_headers(path=path, raw=header, where=where)
    try:
        names = empty_named(path=path, names=names, has_data=seen.has_data, where=where)
    except InputError as exc:
        raise InputError(f"{exc}{hint()}") from None
    notes = []
    if after_quote:
        notes.append(
            f"{len(after_quote)} quoted field(s) had more text after the closing quote "
            f"({_cells(after_quote, header)}): each was read as one field, the quotes dropped "
            "and the text kept, as Python's csv module reads it; check those cells"
        )
    if unclosed:
        notes.append(
            f"{len(unclosed)} quote(s) never closed ({_lines(unclosed)}): each was read as "
            "text, and the line's fields split at the delimiter"
        )
    if seen.padded_count:
        notes.append(
            f"{seen.padded_count} row(s) had fewer fields than the header "
            f"({_lines(seen.padded)}); their missing cells were read as empty"
        )
    if seen.trimmed:
        notes.append(f"{seen.trimmed} row(s) had extra empty fields at the end; they were dropped")
    return _Checked(names, seen.rows, header_line, tuple(notes))
