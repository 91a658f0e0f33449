"""What the validation stage hands on: the column mapping and the prepared input (the
validated batches themselves, and the status, are shared records: ``importer.records``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import polars as pl

from importer.read.records import SourceInfo
from importer.records import ValidatedBatch
from importer.validate.accounts import Routing


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which input columns feed which API field."""

    phone: str
    name: tuple[str, ...] = ()  # one column, or several joined with a space (first + last)
    email: str | None = None
    metadata: tuple[str, ...] = ()  # each becomes metadata[header]
    how: Mapping[str, str] = field(default_factory=dict)  # API field -> "alias" | "--map" | ...
    phone_fallbacks: tuple[str, ...] = ()  # tried in order (see ``validate.pick``)
    labels: str | None = None  # label names, split on ``;`` or ``,``
    # phone column -> its kind by header ("whatsapp", "mobile", "primary", "phone"): the order
    # a row's phone cells are tried in; and -> the column that types its cells per row
    # (Google's "Phone 1 - Label" for "Phone 1 - Value": mobile first, fax never)
    phone_kinds: Mapping[str, str] = field(default_factory=dict)
    phone_types: Mapping[str, str] = field(default_factory=dict)
    account: str | None = None  # which WhatsApp account each row goes to (``accounts``)


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """The input side's answer: what was read, how it maps, and the validated rows."""

    source: SourceInfo
    mapping: ColumnMapping
    batches: Iterator[ValidatedBatch]
    rows_total: int | None = None  # known up front for text files (the check pass counts them)
    reread: Callable[[], Iterable[pl.DataFrame]] | None = None  # the raw rows, read again
    routing: Routing | None = None  # how rows were routed to accounts (an account column)
