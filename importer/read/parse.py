"""The CSV parser that decides a quoted file's structure: records, each with its first line.

Quoting follows RFC 4180 where a field is properly quoted, and reads everything else the way
Excel and LibreOffice do, as literal text:

- a field is *quoted* when it starts with ``"`` and its closing ``"`` (``""`` is a quote
  inside) is followed by the delimiter or the end of the line (spaces may come between);
  a quoted field may hold delimiters and line breaks (a lone CR included);
- a ``"`` anywhere else (``TV 32"``, ``Bu"di``), a field that opens with a quoted word
  (``"Joko" Widodo``) and a quote that never closes within ``MAX_RECORD_LINES`` lines are
  text, kept as written, and the field ends at the next delimiter on its line.

Lines end with LF, CRLF or a lone CR (old Mac Excel). Python's ``csv`` module (strict) reads
every regular record; a record it refuses is read again from its first line by
``_literal``, so one parser, with one rule, decides every record.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator

MAX_RECORD_LINES = 10_000  # a quoted field longer than this is taken as a stray quote
_EOL = "\r\n"


class _TooLong(Exception):
    """A record ran past ``MAX_RECORD_LINES``: its opening quote is read as text."""


class _Feed:
    """The file's lines for ``csv.reader``, remembering those of the current record so a
    refused record can be read again."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._back: deque[str] = deque()
        self.taken: list[str] = []
        self.line = 0  # physical lines handed out so far

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            raise _TooLong
        line = self._back.popleft() if self._back else next(self._lines)
        self.line += 1
        self.taken.append(line)
        return line

    def mark(self) -> int:
        """Start a record; returns the line it starts on."""
        self.taken.clear()
        return self.line + 1

    def rewind(self, keep: int = 0) -> None:
        """Give back the lines taken for the current record, after its first ``keep``."""
        back = self.taken[keep:]
        self._back.extendleft(reversed(back))
        self.line -= len(back)
        del self.taken[keep:]


def records(
    lines: Iterable[str], delimiter: str, *, first_line: int = 1
) -> Iterator[tuple[int, list[str]]]:
    """``(first line, fields)`` of every record; a blank line is a record with no fields.

    ``lines`` are the file's lines with their endings (a file opened with ``newline=""``),
    the first of them being line ``first_line``.
    """
    csv.field_size_limit(1 << 30)
    feed = _Feed(lines)
    feed.line = first_line - 1
    reader = csv.reader(feed, delimiter=delimiter, quotechar='"', strict=True)
    while True:
        start = feed.mark()
        try:
            row = next(reader)
        except StopIteration:
            if not feed.taken:
                return
            row = None  # the file ended inside a quoted field
        except (csv.Error, _TooLong):
            row = None
        if row is None:
            feed.rewind()
            row = _literal(feed, delimiter)
        yield start, row


def _literal(feed: _Feed, delimiter: str) -> list[str]:
    """One record by the rules above, read from its first line (slow, but only for records
    the ``csv`` module refuses)."""
    text = next(feed)
    fields: list[str] = []
    pos = 0
    while True:
        if text.startswith('"', pos):
            quoted = _quoted(feed, text, pos, delimiter)
            if quoted is not None:
                value, pos, text = quoted
                fields.append(value)
                if pos >= len(text) or text[pos] in _EOL:
                    return fields
                pos += 1  # the delimiter
                continue
        end = _field_end(text, pos, delimiter)
        fields.append(text[pos:end])
        if end >= len(text) or text[end] in _EOL:
            return fields
        pos = end + 1


def _field_end(text: str, pos: int, delimiter: str) -> int:
    """Where an unquoted field starting at ``pos`` ends: the delimiter or the line's end."""
    ends = [i for i in (text.find(delimiter, pos), text.find("\r", pos), text.find("\n", pos))]
    found = [i for i in ends if i != -1]
    return min(found) if found else len(text)


def _quoted(feed: _Feed, text: str, pos: int, delimiter: str) -> tuple[str, int, str] | None:
    """A properly quoted field at ``pos``: (value, where it ends, the text read so far, which
    may have grown by more lines); None when the quote is text (lines read are given back)."""
    kept = len(feed.taken)
    parts: list[str] = []
    i = pos + 1
    while True:
        close = text.find('"', i)
        while close == -1:  # the field goes on past this line
            try:
                more = next(feed)
            except (StopIteration, _TooLong):
                feed.rewind(kept)
                return None
            text += more
            close = text.find('"', i)
        parts.append(text[i:close])
        if text.startswith('"', close + 1):  # "" is a quote inside
            parts.append('"')
            i = close + 2
            continue
        end = close + 1
        while end < len(text) and text[end] in " \t" and text[end] != delimiter:
            end += 1
        if end >= len(text) or text[end] == delimiter or text[end] in _EOL:
            return "".join(parts), end, text
        feed.rewind(kept)
        return None
