"""The frozen options of each command, built and checked by the CLI, read by every stage."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

MetadataPolicy = Literal["all", "none"] | tuple[str, ...]
OnExisting = Literal["skip", "update", "create"]
# A number without + or 00 that reads as a valid number two ways (a national number of the
# default region, and its leading digits a country code): refuse it, or take one reading.
BareNumbers = Literal["refuse", "international", "national"]
NotifyOn = Literal["failure", "always"]  # --notify-on
LogFormat = Literal["text", "json"]  # --log-format

# Defaults the options share with the stages that use them: written here only.
WRITE_PER_MINUTE = 600  # a plan's estimate when it is not told the account's budget
TIMEOUT_S = 30.0  # per request, the whole answer included (--timeout)
MAX_WAIT_S = 900.0  # a longer Retry-After stops the run (--max-wait)
MAX_ATTEMPTS = 8  # tries per request, the first included (--max-attempts)

# The shrink guard: a source with fewer valid rows than this share of its last finished
# run's refuses (--min-share), unless --allow-shrink.
MIN_SHARE = 0.5

# The path that means standard input (``plan -``, ``run -``).
STDIN = Path("-")

# Rows per batch read, validated, sent and reported together: memory holds a few of them.
BATCH_ROWS = 50_000
# New unique values in one batch before worker processes help parse them.
POOL_THRESHOLD = 20_000


@dataclass(frozen=True, slots=True)
class InputOptions:
    """How to read, map and validate one input file (shared by ``plan`` and ``run``)."""

    path: Path
    encoding: str | None = None  # None: detect (UTF-8 with or without BOM, else cp1252)
    delimiter: str | None = None  # None: detect from the header line (, ; tab |)
    sheet: str | None = None  # a sheet's name (any case) or 1-based position; None: first visible
    header_row: int | None = None  # the header's file line / sheet row (1-based); None: find it
    format: str | None = None  # csv, tsv, parquet, xlsx, ...: overrides the extension ("-": stdin)
    field_map: Mapping[str, str] = field(default_factory=dict)  # API field -> header (--map)
    metadata: MetadataPolicy = "all"  # which unmapped columns go to metadata
    default_region: str | None = None  # ISO 3166 alpha-2, for national numbers only
    require_mobile: bool = False
    bare_numbers: BareNumbers = "refuse"  # --bare-numbers
    invalid_email: Literal["fail", "drop"] = "fail"
    keep: Literal["first", "last"] = "first"
    batch_size: int = BATCH_ROWS
    pool_threshold: int = POOL_THRESHOLD
    workers: int | None = None  # parser processes; None: one per core, up to 4 (none on 1 core)
    # a binary file object to read instead of ``path`` (the Python API's; ``path`` names it)
    stream: BinaryIO | None = field(default=None, compare=False, repr=False)
    # Sources other than a local file (``read.location``): a URL (``path`` is then its file
    # name), or a query with its database URI; both may hold credentials: never shown.
    url: str | None = field(default=None, repr=False)
    sql: str | None = None  # --sql / --sql-file: the query read instead of a file
    db_uri: str | None = field(default=None, repr=False)  # from --db-uri-env's variable
    row_key: str | None = None  # --row-key: the column that names each row in the reports


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Everything ``kirim-import plan`` needs."""

    input: InputOptions
    report_dir: Path
    write_per_minute: int = WRITE_PER_MINUTE
    verify: bool = False  # estimate what run --verify costs
    state: Path | None = None  # the journal to compare phone cells with (renumbering); None: none
    verbose: bool = False  # the renumbered rows' phones unmasked
    # guard rails and the time window, as a run would apply them (shown, never enforced)
    max_invalid: Limit | None = None
    min_share: float = MIN_SHARE
    window_s: float | None = None  # --max-duration, or from now to --until: how many runs
    window: str | None = None  # how the window was given, for the sentence
    sync_labels: tuple[str, ...] = ()  # --sync-label: how many would be attached and detached
    adopt: bool = False  # --adopt: what a first sync costs, lookups against a page-through
    # a file with an account column: its cells are checked against GET /v1/accounts when a key
    # is set (``send.accounts``); ``account`` is the default for empty cells, as in a run
    account: str | None = None
    base_url: str | None = None
    api_key: str = field(default="", repr=False)  # "" : no key, nothing checked
    # --max-detach, as a run would apply it to --sync-label (shown, never enforced)
    max_detach: float = 10.0
    max_detach_percent: bool = True


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything ``kirim-import run`` needs, checked by the CLI before it hands off."""

    input: InputOptions
    report_dir: Path
    state: Path  # the SQLite journal
    base_url: str
    api_key: str = field(repr=False)  # never printed, logged or written
    account: str | None = None
    on_existing: OnExisting = "skip"
    concurrency: int | None = None  # None: from the write rate (see pipeline.auto_concurrency)
    max_rate: float | None = None  # writes per minute; None: what /v1/me says
    limit: int | None = None  # send only the first N valid rows
    timeout_s: float = TIMEOUT_S
    max_wait_s: float = MAX_WAIT_S
    max_attempts: int = MAX_ATTEMPTS
    drain_timeout_s: float = 15.0  # how long in-flight requests may finish after a stop
    verbose: bool = False
    quiet: bool = False  # cron: only warnings and the closing lines
    labels: tuple[str, ...] = ()  # --label: on every contact the run created or updated
    verify: bool = False  # --verify: look up contacts the journal holds done; create the gone
    sandbox: bool = False  # --sandbox: each run's server is fresh, so a rerun resumes nothing
    allow_renumber: bool = False  # send rows whose cell the journal knows under another number
    notify: tuple[str, ...] = ()  # --notify URL: POST the run's outcome there (importer.notify)
    notify_on: NotifyOn = "failure"  # --notify-on: only when it failed, or always
    log_format: LogFormat = "text"  # --log-format json: one JSON object a log line (jsonlog)
    # guard rails (``importer.guards``): refused before anything is sent, or a mid-run stop
    max_invalid: Limit | None = None  # --max-invalid N|P%: more invalid rows refuse the run
    min_share: float = MIN_SHARE  # --min-share P%: of the source's last finished valid rows
    allow_shrink: bool = False  # --allow-shrink: send a source that shrank below min_share
    max_failed: Limit | None = None  # --max-failed N|P%: stop once that many rows failed
    # the time window (``importer.window``): the run stops cleanly when it closes
    max_duration_s: float | None = None  # --max-duration 5h30m, from the invocation's start
    until: str | None = None  # --until HH:MM, local time, the next such moment

    # --sync-label: on every row's contact; taken off contacts that left the source (mirror)
    sync_labels: tuple[str, ...] = ()
    max_detach: float = 10.0  # --max-detach: at most this many detached per label...
    max_detach_percent: bool = True  # ...or this share of its members from the source
    adopt: bool = False  # --adopt: page the account's contacts into the journal first


@dataclass(frozen=True, slots=True)
class Limit:
    """A guard's threshold: a number of rows (``--max-invalid 100``) or a share of them
    (``--max-invalid 5%``); ``text`` is how it was written."""

    count: int | None = None
    percent: float | None = None
    text: str = ""

    def rows(self, total: int) -> int:
        """The threshold in rows, out of ``total`` (a share rounds up: 5% of 30 is 2)."""
        if self.count is not None:
            return self.count
        return math.ceil((self.percent or 0.0) * total / 100 - 1e-9)


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """Everything ``kirim-import export`` needs."""

    output: Path
    base_url: str
    api_key: str = field(repr=False)  # never printed, logged or written
    format: Literal["csv", "parquet"] = "csv"
    label: str | None = None  # only this label's members
    account: str | None = None
    timeout_s: float = TIMEOUT_S
    max_wait_s: float = MAX_WAIT_S
    max_attempts: int = MAX_ATTEMPTS
    quiet: bool = False  # no progress bar


# A phone cell longer than this is no phone number (phonenumbers refuses > 250): validation
# refuses it, and its key (``records.phone_key``) keeps it whole. Here, in a leaf without
# polars, because the parser's worker processes read it too.
PHONE_CELL_MAX = 100
