"""What the validation stage hands on: the column mapping, the validated batches and their
schema, and the one status every input row ends in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import polars as pl

from importer.read.records import SourceInfo


class Status(StrEnum):
    """The one status every input row ends in."""

    VALID = "valid"  # plan only: would be sent
    INVALID = "invalid"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # update mode: Kirim already has this very body (the journal knows)
    EXISTS = "exists"
    FAILED = "failed"


# The fields a column can feed (``--map FIELD=HEADER``); metadata takes the rest. ``labels``
# is not a contact field: its values are attached as Kirim labels (``send.labels``).
FIELDS = ("phone_number", "name", "email", "labels")


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


# The columns of ValidatedBatch.rows, in order, with their polars types.
VALIDATED_SCHEMA: dict[str, type[pl.DataType]] = {
    "row_number": pl.Int64,  # 1-based data row as a person sees it (header is not a row)
    "status": pl.String,  # valid | invalid | duplicate_in_file
    "phone_number": pl.String,  # E.164 with '+', null when not parsed
    "name": pl.String,  # cleaned, null when empty
    "email": pl.String,  # normalised, null when empty or dropped
    "metadata": pl.String,  # JSON object text (keys sorted), null when empty
    "error_code": pl.String,  # reason code when invalid / duplicate_in_file
    "error_message": pl.String,  # a sentence for a person, naming the column
    "warning": pl.String,  # e.g. email dropped under --invalid-email drop
    "duplicate_of": pl.Int64,  # the row_number kept, for duplicate_in_file
    "raw_phone": pl.String,  # the cell as read
    "phone_region": pl.String,  # region the number belongs to / was parsed with
    # how the region was decided: "plus_sign", "idd_00", "default", "country_code" (digits
    # without + read with their country code: --bare-numbers, or the one mobile reading)
    "region_source": pl.String,
    "number_type": pl.String,  # mobile | fixed_line | fixed_line_or_mobile | voip | ...
    "labels": pl.String,  # the labels column's names, trimmed, de-duplicated, joined by "; "
}
LABEL_SEPARATOR = "; "


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """A slice of the input, validated: ``rows`` and ``original`` are row-aligned."""

    rows: pl.DataFrame  # VALIDATED_SCHEMA
    original: pl.DataFrame  # the input's own columns as text, values exactly as read


@dataclass(frozen=True, slots=True)
class PreparedInput:
    """The input side's answer: what was read, how it maps, and the validated rows."""

    source: SourceInfo
    mapping: ColumnMapping
    batches: Iterator[ValidatedBatch]
    rows_total: int | None = None  # known up front for text files (the check pass counts them)
    reread: Callable[[], Iterable[pl.DataFrame]] | None = None  # the raw rows, read again
