"""The records every stage shares, from a leaf: the one status every input row ends in, the
fields a column can feed, and a validated batch with its schema (validation makes them, the
sending stage and the report read them). Stage-specific records stay with their stage
(``read/records``, ``validate/records``, ``send/records``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl


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
