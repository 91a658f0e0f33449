"""Records shared by the pipeline's stages: frozen, typed, and free of behaviour.

The stages that pass options, rows or errors import from here; this module imports no other
stage.

Whole-run problems are exceptions; per-row outcomes are values (``Status`` plus
an error code on the row). The exception tree::

    ImporterError            anything that ends a command early, with a message for a person
    ├── InputError           the input file or the options cannot be used (exit 2, nothing sent)
    ├── StopRun              the server said no more can succeed: auth, account (exit 3)
    └── JournalError         SQLite cannot open, read or write the journal: exit 2 at the start
                             (nothing sent); mid-run it stops the run like a StopRun (exit 3)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

import polars as pl


class ImporterError(Exception):
    """A problem that ends the command; ``str(exc)`` is the whole message for a person."""


class InputError(ImporterError):
    """The input cannot be used: names the file, and the line, row or column where known."""


class StopRun(ImporterError):
    """The server answered something that means no further request can succeed."""


class JournalError(ImporterError):
    """SQLite could not open, read or write the journal (locked, unwritable, full, damaged)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A phone's line in the journal (``journal.Journal.entries``)."""

    phone: str
    state: str
    idem_key: str
    sent_at: float
    run_id: int
    outcome: str | None
    contact_id: str | None
    request_id: str | None
    needs_lookup: bool  # it may exist under an older key: only a lookup can tell


@dataclass(frozen=True, slots=True)
class Outcome:
    """A row's final answer, as the journal records it."""

    phone: str
    state: str  # done | failed
    outcome: str | None  # created | updated | exists, for done
    contact_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    request_id: str | None = None


class Status(StrEnum):
    """The one status every input row ends in."""

    VALID = "valid"  # plan only: would be sent
    INVALID = "invalid"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    CREATED = "created"
    UPDATED = "updated"
    EXISTS = "exists"
    FAILED = "failed"


MetadataPolicy = Literal["all", "none"] | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class InputOptions:
    """How to read, map and validate one input file (shared by ``plan`` and ``run``)."""

    path: Path
    encoding: str | None = None  # None: detect (UTF-8 with or without BOM, else cp1252)
    delimiter: str | None = None  # None: detect from the header line (, ; tab |)
    sheet: str | None = None  # XLSX sheet name; None: the first sheet
    field_map: Mapping[str, str] = field(default_factory=dict)  # API field -> header (--map)
    metadata: MetadataPolicy = "all"  # which unmapped columns go to metadata
    default_region: str | None = None  # ISO 3166 alpha-2, for national numbers only
    require_mobile: bool = False
    invalid_email: Literal["fail", "drop"] = "fail"
    keep: Literal["first", "last"] = "first"
    batch_size: int = 50_000
    pool_threshold: int = 20_000  # new unique values in a batch before worker processes help


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What was detected about the input file."""

    path: Path
    format: Literal["csv", "tsv", "parquet", "xlsx"]
    columns: tuple[str, ...]  # headers as the file has them (trimmed, BOM removed)
    encoding: str | None = None  # text formats only
    delimiter: str | None = None  # text formats only
    sheet: str | None = None  # xlsx only


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which input columns feed which API field."""

    phone: str
    name: tuple[str, ...] = ()  # one column, or several joined with a space (first + last)
    email: str | None = None
    metadata: tuple[str, ...] = ()  # each becomes metadata[header]
    how: Mapping[str, str] = field(default_factory=dict)  # API field -> "alias" | "--map" | ...


# What report.py appends to the input's own columns in failures.csv. A file that has all four
# is a failures.csv fed back: the source drops them, so they never become metadata.
FAILURE_COLUMNS = ("row_number", "error_code", "error_message", "retryable")
# A failures.csv fed back keeps its row_number as this column (never metadata), and each
# later failures.csv carries it on, so every retry's results join back to the first file.
SOURCE_ROW = "source_row"

# The columns of PlannedBatch.planned, in order, with their polars types.
PLANNED_SCHEMA: dict[str, type[pl.DataType]] = {
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
    "region_source": pl.String,  # how the region was decided: "plus_sign", "idd_00", "default"
    "number_type": pl.String,  # mobile | fixed_line | fixed_line_or_mobile | voip | ...
}


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """A slice of the input, validated: ``planned`` and ``original`` are row-aligned."""

    planned: pl.DataFrame  # PLANNED_SCHEMA
    original: pl.DataFrame  # the input's own columns as text, values exactly as read


@dataclass(frozen=True, slots=True)
class Plan:
    """The input side's answer: what was read, how it maps, and the validated rows."""

    source: SourceInfo
    mapping: ColumnMapping
    batches: Iterator[PlannedBatch]
    rows_total: int | None = None  # known up front for text files (the check pass counts them)
    reread: Callable[[], Iterable[pl.DataFrame]] | None = None  # the raw rows, read again


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one valid row in a run (joined onto its planned row by the report)."""

    row_number: int
    status: Status  # created | updated | exists | failed
    contact_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    attempts: int = 0
    replayed: bool = False
    retryable: bool | None = None


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Everything ``kirim-import plan`` needs."""

    input: InputOptions
    report_dir: Path
    write_per_minute: int = 600


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything ``kirim-import run`` needs, checked by the CLI before it hands off."""

    input: InputOptions
    report_dir: Path
    state: Path  # the SQLite journal
    base_url: str
    api_key: str = field(repr=False)  # never printed, logged or written
    account: str | None = None
    on_existing: Literal["skip", "update", "create"] = "skip"
    concurrency: int | None = None  # None: from the write rate (see pipeline.auto_concurrency)
    max_rate: float | None = None  # writes per minute; None: what /v1/me says
    limit: int | None = None  # send only the first N valid rows
    timeout_s: float = 30.0
    drain_timeout_s: float = 15.0  # how long in-flight requests may finish after a stop
    verbose: bool = False
