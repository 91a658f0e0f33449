"""Which text encoding a CSV/TSV file is in.

``--encoding`` always wins (and must decode the whole file). Otherwise: UTF-16 when the file
starts with its byte-order mark; UTF-8 (BOM or not) when every byte decodes; and when UTF-8
fails, either

- the file *is* UTF-8 with a few damaged bytes (it holds at least as many well-formed UTF-8
  multi-byte characters as bad bytes): it is refused, naming the lines, because decoding
  it whole as cp1252 would garble every correct name; or
- charset-normalizer (a maintained detector) picks the encoding from samples of the file,
  which must then decode whole; the choice and how sure it is are shown on the Input line.

Every check streams the file in blocks: memory stays flat.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import NamedTuple

from importer.errors import InputError

_CHUNK = 1 << 20
_SAMPLE = 4 << 20  # bytes charset-normalizer looks at
_SHOWN = 5  # bad lines named in a message
_NON_ASCII_OK = re.compile("[^\x00-\x7f\udc80-\udcff]")
_BAD = re.compile("[\udc80-\udcff]")
_CLOSE = 0.1  # candidates whose chaos is this close to the best one's are read too
_NON_ASCII = re.compile("[^\x00-\x7f]")
_WESTERN = re.compile("[\u00c0-\u00ff]")  # the letters of Latin-1: Spanish, Portuguese, ...
# the non-ASCII characters besides letters that people put in names, addresses and notes
_SIGNS = frozenset("\u00a0¡¢£¥§©ª«®°±²³´µ·¹º»¼½¾¿×÷–—‘’“”•…€™")


class Encoding(NamedTuple):
    codec: str  # what Python decodes with ("utf-8-sig" reads UTF-8 with or without a BOM)
    label: str  # what the Input line shows
    note: str | None = None  # how it was chosen, when detected


def choose(path: Path, wanted: str | None) -> Encoding:
    """The file's encoding; ``InputError`` when it cannot be decoded."""
    with path.open("rb") as f:
        head = f.read(4)
    if wanted is not None:
        try:
            name = codecs.lookup(wanted).name
        except LookupError as exc:
            raise InputError(f"unknown encoding {wanted!r} (try utf-8 or cp1252)") from exc
        codec = "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name
        _must_decode(path, codec, hint="")
        return Encoding(codec, _label(codec, head))
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _must_decode(path, "utf-16", hint="; pass --encoding with the file's real encoding")
        return Encoding("utf-16", "utf-16")
    if _decodes(path, "utf-8-sig"):  # the usual case, at C speed
        return Encoding("utf-8-sig", _label("utf-8-sig", head))
    good, bad, lines = _utf8_census(path)
    if good >= bad:
        where = ", ".join(map(str, lines)) + (" ..." if bad > len(lines) else "")
        raise InputError(
            f"{path}: the file is UTF-8 but {bad} byte(s) are not (line {where}); fix those "
            "cells, or pass --encoding if the whole file is in another encoding (e.g. cp1252)"
        )
    return _detected(path, head)


def _label(codec: str, head: bytes) -> str:
    if codec == "utf-8-sig":
        return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    return codec


def _utf8_census(path: Path) -> tuple[int, int, list[int]]:
    """(well-formed non-ASCII characters, bad bytes, the first lines holding bad bytes)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    good = bad = 0
    lines: list[int] = []
    line = 1
    with path.open("rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            text = decoder.decode(chunk, final=not chunk)
            good += len(_NON_ASCII_OK.findall(text))
            for found in _BAD.finditer(text) if len(lines) < _SHOWN else ():
                at = line + text.count("\n", 0, found.start())
                if at not in lines and len(lines) < _SHOWN:
                    lines.append(at)
            bad += len(_BAD.findall(text))
            line += text.count("\n")
            if not chunk:
                return good, bad, lines


def _detected(path: Path, head: bytes) -> Encoding:
    """The encoding charset-normalizer finds, when it is sure: the candidates it scores
    close to its best are decoded, and the readings whose letters are implausible (a
    symbol, or a capital inside a lower-case word: ``JosŽ`` from a Mac Roman é) dropped.
    One reading left: it. Several: the Windows code page (cp1252) when it is one of them
    and reads only Western European letters, else the file is refused with the candidates."""
    import charset_normalizer

    with path.open("rb") as f:  # a sample: the detector holds what it is given in memory
        sample = f.read(_SAMPLE)
    found = charset_normalizer.from_bytes(sample)
    best = found.best()
    if best is None:
        raise InputError(
            f"{path}: not UTF-8, and its encoding could not be recognised; "
            "pass --encoding with the file's real encoding"
        )
    readings: dict[str, list[str]] = {}  # the sample as read -> the code pages reading it so
    for match in found:
        if match.chaos > best.chaos + _CLOSE:
            continue
        codec = codecs.lookup(match.encoding).name
        text = sample.decode(codec, errors="replace")
        if codec not in readings.setdefault(text, []):
            readings[text].append(codec)
    cp1252 = sample.decode("cp1252", errors="replace")
    if cp1252 in readings and "cp1252" not in readings[cp1252]:
        readings[cp1252].insert(0, "cp1252")  # the common code page, when it reads the same
    plausible = {text: names for text, names in readings.items() if _plausible(text)}
    others: list[str] = []
    if len(plausible) == 1:
        codec = next(iter(plausible.values()))[0]
    elif cp1252 in plausible and all(_WESTERN.match(ch) for ch in _NON_ASCII.findall(cp1252)):
        codec = "cp1252"
        others = [names[0] for text, names in plausible.items() if text != cp1252]
    else:
        names = [n[0] for n in (plausible or readings).values()]
        raise InputError(
            f"{path}: not UTF-8, and charset-normalizer is not sure of its encoding: "
            f"{', '.join(names)} read its letters differently; pass --encoding with the "
            "file's real encoding (cp1252: Excel on Windows; mac_roman: Excel on an old Mac; "
            "cp850: DOS and old Windows console programs)"
        )
    hint = f" (charset-normalizer guessed {codec}); pass --encoding with the file's real encoding"
    _must_decode(path, codec, hint=hint)
    if others:
        note = (
            "not UTF-8; read as cp1252, the Windows code page (charset-normalizer finds "
            f"{', '.join(others)} about as likely, which read some letters differently): "
            "pass --encoding if names look wrong"
        )
    else:
        sure = max(0.0, 100.0 - best.percent_chaos)
        note = (
            f"not UTF-8; read as {codec}, detected by charset-normalizer ({sure:.0f}% sure): "
            "pass --encoding to choose another"
        )
    return Encoding(codec, codec, note)


def _plausible(text: str) -> bool:
    """Whether every non-ASCII character of ``text`` is a letter or a common sign, and no
    non-ASCII capital follows a lower-case letter (``JosŽ``, ``MŸller``)."""
    for found in _NON_ASCII.finditer(text):
        ch, at = found.group(), found.start()
        if not ch.isalpha():
            if ch not in _SIGNS:
                return False
        elif ch.isupper() and at and text[at - 1].islower():
            return False
    return True


def _decodes(path: Path, codec: str) -> bool:
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    with path.open("rb") as f:
        try:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _must_decode(path: Path, codec: str, *, hint: str) -> None:
    """Stream the whole file through ``codec``; ``InputError`` naming the first bad byte."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    offset = 0
    line = 1
    with path.open("rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                at = line + exc.object[: exc.start].count(b"\n")
                byte = exc.object[exc.start : exc.start + 1].hex()
                raise InputError(
                    f"{path}: not valid {_label(codec, b'')} text: byte 0x{byte} at offset "
                    f"{offset + exc.start} (line {at}){hint}"
                ) from None
            if not chunk:
                return
            offset += len(chunk)
            line += chunk.count(b"\n")
