"""The CSV parser that decides a quoted file's structure: Python's ``csv`` module (its C
reader), fed blocks of whole lines, with each record's first line kept.

- Every regular record (RFC 4180: a quoted field may hold delimiters, ``""`` and line breaks,
  a lone CR included; a ``"`` inside an unquoted field, ``TV 32"`` or ``Bu"di``, is text) is
  read by the strict reader.
- A record the strict reader refuses on its first line (a quoted field followed by more text,
  ``"Ani, S.Pd" guru``, ``"Joko" Widodo``) is read as the ``csv`` module reads it by default:
  the quotes dropped, the text kept (``Ani, S.Pd guru``), one field. Its line is listed
  (``Chunk.after_quote``) so the reader can say so.
- A quote that never closes (the file ends inside it, it runs past ``MAX_RECORD_LINES``
  lines, or the strict reader refuses the record on a later line) is text: the record's
  first line is read with quoting off, and the next line starts a record
  (``Chunk.unclosed``).

Lines end with LF, CRLF or a lone CR (old Mac Excel); the blocks are cut after a line break
and split by ``io.StringIO`` (``newline=""``: endings kept, nothing translated), so the
reader never sees a partial line. A record that runs past a block's end is read again with
the next block. Memory stays at about one block.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from typing import NamedTuple, TextIO

MAX_RECORD_LINES = 10_000  # a quoted field longer than this is taken as a stray quote
BLOCK_CHARS = 1 << 20  # characters read at a time
_END_OF_DATA = "unexpected end of data"


class Chunk(NamedTuple):
    """The records read from one block of lines."""

    rows: list[list[str]]  # a blank line is a record with no fields
    starts: list[int]  # the file line each record starts on
    after_quote: list[tuple[int, int]]  # (line, field index) of text after a closing quote
    unclosed: list[int]  # lines whose quote never closes (read as text)


def _blocks(f: TextIO) -> Iterator[tuple[list[str], bool]]:
    """(the next lines of ``f``, whether they are the last), in blocks of whole lines."""
    rest = ""
    while True:
        chunk = f.read(BLOCK_CHARS)
        data = rest + chunk
        if not chunk:
            if data:
                yield io.StringIO(data, newline="").readlines(), True
            return
        # after the last line break; a CR at the very end may be half of a CRLF
        cut = max(data.rfind("\n"), data.rfind("\r", 0, len(data) - 1)) + 1
        rest = data[cut:]
        if cut:
            yield io.StringIO(data[:cut], newline="").readlines(), False


def records(f: TextIO, delimiter: str, *, first_line: int = 1) -> Iterator[Chunk]:
    """The records of ``f`` (opened with ``newline=""``), a block at a time; its first line
    is line ``first_line`` of the file."""
    csv.field_size_limit(1 << 30)
    carry: list[str] = []
    line = first_line  # the file line of carry + block's first line
    for block, last in _blocks(f):
        lines = carry + block if carry else block
        chunk, used = _parse(lines, delimiter, line, last=last)
        carry = lines[used:]
        line += used
        yield chunk
    if carry:  # a quote still open at the end of the file
        yield _parse(carry, delimiter, line, last=True)[0]


def _parse(lines: list[str], delimiter: str, line: int, *, last: bool) -> tuple[Chunk, int]:
    """The records of ``lines`` (``lines[0]`` is file line ``line``), and how many lines they
    took: a record cut by the block's end is left for the next block."""
    chunk = Chunk([], [], [], [])
    rows, starts = chunk.rows, chunk.starts
    pos = 0  # index in lines of the next record's first line
    while True:
        base = pos
        reader = csv.reader(
            itertools.islice(lines, pos, None), delimiter=delimiter, quotechar='"', strict=True
        )
        try:
            for row in reader:
                rows.append(row)
                starts.append(line + pos)
                pos = base + reader.line_num
            return chunk, pos
        except csv.Error as exc:
            failed_on = base + reader.line_num - 1  # the line the reader stopped on
            if str(exc) == _END_OF_DATA and not last and len(lines) - pos < MAX_RECORD_LINES:
                return chunk, pos  # the record goes on in the next block
        loose: list[str] | None = None
        span = 1
        if failed_on == pos:  # refused on its first line: text after a closing quote
            loose, span = _loose(lines, pos, delimiter)
            if loose is None and not last and len(lines) - pos < MAX_RECORD_LINES:
                return chunk, pos  # its quoted field goes on in the next block
        if loose is None:
            loose, span = _unquoted(lines[pos], delimiter), 1
            chunk.unclosed.append(line + pos)
        else:
            chunk.after_quote.append((line + pos, _field_after_quote(lines[pos], delimiter)))
        rows.append(loose)
        starts.append(line + pos)
        pos += span


def _loose(lines: list[str], pos: int, delimiter: str) -> tuple[list[str] | None, int]:
    """The record at ``lines[pos]`` as the ``csv`` module reads it by default (text after a
    closing quote kept) and the lines it took; None when a quote is still open at the end of
    ``lines`` (an empty line after them is taken into the record) or the record runs past
    ``MAX_RECORD_LINES``."""
    available = len(lines) - pos
    more = itertools.chain(itertools.islice(lines, pos, None), ["\n"])
    reader = csv.reader(more, delimiter=delimiter, quotechar='"')
    try:
        row = next(reader)
    except (csv.Error, StopIteration):
        return None, 1
    span = reader.line_num
    if span > min(available, MAX_RECORD_LINES):
        return None, 1
    return row, span


def _field_after_quote(text: str, delimiter: str) -> int:
    """Which field of ``text`` (a line the strict reader refuses) has text after its closing
    quote: the strict reader is run on the line cut at each delimiter in turn, and the field
    is the one after the last cut it reads whole."""
    fields = 0
    for at, ch in enumerate(text):
        if ch != delimiter:
            continue
        try:
            fields = len(next(csv.reader([text[:at]], delimiter=delimiter, strict=True), []))
        except csv.Error as exc:
            if str(exc) != _END_OF_DATA:  # the cut passed the quote and its text
                return fields
    return fields


def _unquoted(text: str, delimiter: str) -> list[str]:
    """One line split on the delimiter with quoting off: every ``"`` is text."""
    return next(csv.reader([text], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
