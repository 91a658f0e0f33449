"""The records every stage shares, from a leaf: the one status every input row ends in, the
fields a column can feed, and a validated batch with its schema (validation makes them, the
sending stage and the report read them). Stage-specific records stay with their stage
(``read/records``, ``validate/records``, ``send/records``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from importer.options import PHONE_CELL_MAX


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
# is not a contact field: its values are attached as Kirim labels (``send.labels``); nor is
# ``account``: the WhatsApp account a row goes to (``validate.accounts``).
FIELDS = ("phone_number", "name", "email", "labels", "account")


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
    # the account column's: the phone_number_id the row goes to (or, not checked against
    # Kirim's list, its cell normalised); null in a file without an account column
    "account": pl.String,
}
LABEL_SEPARATOR = "; "



@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """A slice of the input, validated: ``rows`` and ``original`` are row-aligned."""

    rows: pl.DataFrame  # VALIDATED_SCHEMA
    original: pl.DataFrame  # the input's own columns as text, values exactly as read


def phone_key(raw: pl.Expr) -> pl.Expr:
    """The value a phone cell is parsed as: separators dropped when that cannot change it.

    A cell of ASCII digits, ``+`` and separators ``space ( ) . - nbsp`` with at least three
    digits and ``+`` only in front parses exactly as its digits: phonenumbers drops those
    separators itself, all of them are phone punctuation to it, and no extension pattern can
    match without a letter, ``#``, ``~``, ``,`` or ``;``. ``0812-3456-7890`` and
    ``(0812) 3456 7890`` are then parsed once. Any other cell is its own key, and so are a
    float's ``6281234567890.0`` (its ``.0`` is not a digit) and a ``/`` (two numbers?).
    """
    compact = raw.str.replace_all(r"[ ().\-\x{a0}]", "")
    same = (
        raw.str.contains(r"^[0-9 ().\-\x{a0}+]*$")
        & compact.str.contains(r"^\+?[0-9]{3,}$")
        & ~raw.str.contains(r"\.0+\s*$")
        & (raw.str.strip_chars().str.len_chars() <= PHONE_CELL_MAX)
    )
    return pl.when(same).then(compact).otherwise(raw)


# Account statuses that take contacts: ``degraded`` (quality problems on WhatsApp's side)
# still does (kirim-api.md is silent; refusing it would stop imports for nothing).
USABLE_ACCOUNT = frozenset({"connected", "degraded"})


ACCOUNT_ID = re.compile(r"\d{6,20}")  # kirim-api.md: phone_number_id matches ^\d{6,20}$


@dataclass(frozen=True, slots=True)
class Account:
    """One WhatsApp account of the organisation, as ``GET /v1/accounts`` lists it: the
    pre-flight reads them (``send.preflight``), validation routes rows to them
    (``validate.accounts``)."""

    phone_number_id: str | None  # null while onboarding
    phone_number: str | None  # as listed (the routing compares it in E.164)
    name: str | None
    status: str | None

    @property
    def usable(self) -> bool:
        return self.phone_number_id is not None and self.status in USABLE_ACCOUNT

    def describe(self) -> str:
        return f"{self.phone_number_id} {self.phone_number} ({self.status})"
