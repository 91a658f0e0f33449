"""Guard rails: a wrong export is refused before anything is sent, and a run that fails row
after row stops.

Before sending (exit 2, a message with the numbers, nothing sent past the read-only
pre-flight, no line in the journal; ``errors.Refused``):

- ``--max-invalid N`` or ``P%`` (of the file's rows): more invalid rows than that refuse the
  run (a moved column, another customer's export).
- the shrink guard: the journal remembers, per source (``source_identity``), organisation and
  account, how many valid rows the source's last *finished* run had (``remember``); a source
  with fewer than ``--min-share`` (default 50%) of them refuses, unless ``--allow-shrink``
  (tonight's export truncated to 10 rows). A run that stopped early leaves no such line.

Both need the whole file's counts before the first write, so when one is armed the file is
validated once, up front (``Spool.count``), and the validated batches are spooled to a private
temporary folder (Arrow IPC, lz4) and sent from there: no second validation, memory stays
flat. A run with no guard armed (no ``--max-invalid``, no ``--max-failed P%``, and no finished
run of this source in the journal, or ``--allow-shrink``) streams as before.

During the run: ``--max-failed N|P%`` (P% of the valid rows) stops the run (exit 3, like any
other stop: in-flight requests finish, the rest is reported ``not_attempted``) once that many
rows have failed (``FailureWatch``). Rows held back (``--limit``) or never sent are not
failures.

``plan`` shows the same comparisons (``plan_lines``), never refusing.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from importer.errors import JournalError, Refused
from importer.options import STDIN, InputOptions, Limit, PlanOptions, RunOptions
from importer.read import location
from importer.records import Status, ValidatedBatch
from importer.send.dispatch import Listener
from importer.send.records import RowResult
from importer.send.stop import Stop, Why
from importer.validate.records import PreparedInput

_SOURCES = """
CREATE TABLE IF NOT EXISTS sources (
    org TEXT NOT NULL, account TEXT NOT NULL, source TEXT NOT NULL,
    valid_rows INTEGER NOT NULL, rows_total INTEGER NOT NULL,
    run_id INTEGER NOT NULL, finished_at REAL NOT NULL,
    PRIMARY KEY (org, account, source)
) WITHOUT ROWID
"""


def source_identity(options: InputOptions) -> str | None:
    """What makes two runs "the same source" for the shrink guard: the journal's one name for
    a source (``read.location.identity``: a file's resolved path, a URL without its secrets,
    a query with its URI's host and database). None when the input has no lasting identity
    (standard input, a file object without a name): the shrink guard does not apply."""
    if options.url is None and options.sql is None and options.path == STDIN:
        return None
    return location.identity(options)


@dataclass(frozen=True, slots=True)
class Counted:
    """The whole file's counts, before anything is sent."""

    rows_total: int
    valid: int
    invalid: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the journal remembers of a source's last finished run."""

    valid_rows: int
    rows_total: int
    run_id: int
    finished_at: float

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.finished_at).astimezone()
        return f"run #{self.run_id}, {when:%Y-%m-%d %H:%M}"


# --- the journal's memory of sources -------------------------------------------------------


def last_finished(
    state: Path | None, source: str | None, *, org: str | None = None, account: str | None = None
) -> Baseline | None:
    """The source's last finished run in the journal at ``state``: for ``org`` and
    ``account``, or (a plan, or before the pre-flight) the latest of any. Read only; a journal
    that does not exist or has no such line gives None. Raises ``JournalError``."""
    if state is None or source is None or not state.is_file():
        return None
    query = (  # org and account: the given ones, or (NULL) any
        "SELECT valid_rows, rows_total, run_id, finished_at FROM sources WHERE source=?"
        " AND (?2 IS NULL OR org=?2) AND (?3 IS NULL OR account=?3)"
        " ORDER BY finished_at DESC LIMIT 1"
    )
    args = [source, org, account]
    try:
        db = sqlite3.connect(state.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
        with contextlib.closing(db):
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='sources'").fetchone() is None:
                return None
            row = db.execute(query, args).fetchone()
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {state}: {exc}") from None
    return None if row is None else Baseline(int(row[0]), int(row[1]), int(row[2]), float(row[3]))


def remember(
    state: Path,
    source: str | None,
    *,
    org: str,
    account: str,
    summary: Mapping[str, Any],
    run_id: int,
    now: float | None = None,
) -> None:
    """Note a finished run's valid rows as its source's baseline (the table is made on first
    use). Its own short connection, after the run's journal is closed. Raises
    ``JournalError``."""
    if source is None:
        return
    total = int(summary.get("rows_total", 0))
    valid = total - int(summary.get("invalid", 0)) - int(summary.get("duplicate_in_file", 0))
    row = (org, account, source, valid, total, run_id, time.time() if now is None else now)
    try:
        db = sqlite3.connect(state.resolve().as_uri() + "?mode=rw", uri=True, timeout=5.0)
        with contextlib.closing(db), db:
            db.execute(_SOURCES)
            db.execute(
                "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT"
                " (org, account, source) DO UPDATE SET valid_rows=excluded.valid_rows,"
                " rows_total=excluded.rows_total, run_id=excluded.run_id,"
                " finished_at=excluded.finished_at",
                row,
            )
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {state}: {exc}") from None


# --- counting before sending ---------------------------------------------------------------


class Spool:
    """The validated batches of one pass, counted and kept in a private temporary folder
    (0700, removed on ``close``) to be sent from, so the file is validated once."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="kirim-import-")
        self._batches = 0

    def count(self, prepared: PreparedInput) -> tuple[PreparedInput, Counted]:
        """Validate every batch of ``prepared`` (its one pass), count it and spool it; returns
        the input to send from (the spooled batches) and the counts."""
        statuses: dict[str, int] = {}
        folder = Path(self._dir.name)
        for batch in prepared.batches:
            for status, n in batch.rows.group_by("status").len().iter_rows():
                statuses[status] = statuses.get(status, 0) + n
            batch.rows.write_ipc(folder / f"{self._batches}.rows", compression="lz4")
            batch.original.write_ipc(folder / f"{self._batches}.original", compression="lz4")
            self._batches += 1
        counted = Counted(
            rows_total=sum(statuses.values()),
            valid=statuses.get(Status.VALID.value, 0),
            invalid=statuses.get(Status.INVALID.value, 0),
            duplicates=statuses.get(Status.DUPLICATE_IN_FILE.value, 0),
        )
        return replace(prepared, batches=self._read()), counted

    def _read(self) -> Iterator[ValidatedBatch]:
        folder = Path(self._dir.name)
        for i in range(self._batches):
            rows, original = folder / f"{i}.rows", folder / f"{i}.original"
            batch = ValidatedBatch(
                rows=pl.read_ipc(rows),
                original=pl.read_ipc(original),
            )
            rows.unlink(missing_ok=True)
            original.unlink(missing_ok=True)
            yield batch

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Guards:
    """One run's guard rails: whether the file must be counted first, and the checks."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.source = source_identity(options.input)
        self.counted: Counted | None = None
        self.baseline: Baseline | None = None

    def armed(self) -> bool:
        """Whether a guard needs the whole file's counts before the first write."""
        o = self.options
        shrink = not o.allow_shrink and last_finished(o.state, self.source) is not None
        share = o.max_failed is not None and o.max_failed.percent is not None
        return o.max_invalid is not None or share or shrink

    def count(self, prepared: PreparedInput, spool: Spool) -> PreparedInput:
        """Count the file (through ``spool``) when a guard is armed, and check
        ``--max-invalid``; returns the input to send from. Raises ``Refused``."""
        if not self.armed():
            return prepared
        prepared, self.counted = spool.count(prepared)
        refuse_invalid(self.options.max_invalid, self.counted)
        return prepared

    def check_shrink(self, *, org: str, account: str) -> None:
        """The shrink guard, for this organisation and account (after the pre-flight, before
        the journal writes anything). Raises ``Refused``."""
        o = self.options
        if self.counted is None or o.allow_shrink:
            return
        self.baseline = last_finished(o.state, self.source, org=org, account=account)
        refuse_shrink(self.source, self.counted, self.baseline, o.min_share)

    def failure_limit(self) -> int | None:
        """``--max-failed`` in rows (a share of the valid rows counted first), or None."""
        limit = self.options.max_failed
        if limit is None:
            return None
        if limit.percent is not None:
            return max(1, limit.rows(self.counted.valid if self.counted else 0))
        return limit.rows(0)

    def facts(self) -> dict[str, Any]:
        """What summary.json tells of the guards (``guards``)."""
        c, b = self.counted, self.baseline
        return {
            "source": self.source,
            "valid_rows": c.valid if c else None,
            "last_finished_valid_rows": b.valid_rows if b else None,
            "last_finished_run": b.run_id if b else None,
            "max_failed_rows": self.failure_limit(),
        }


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def refuse_invalid(limit: Limit | None, counted: Counted) -> None:
    if limit is None:
        return
    allowed = limit.rows(counted.rows_total)
    if counted.invalid <= allowed:
        return
    raise Refused(
        f"{counted.invalid} of {counted.rows_total} rows are invalid "
        f"({_pct(counted.invalid, counted.rows_total)}), more than --max-invalid {limit.text} "
        f"allows ({allowed} rows): the run is refused (a moved column, another export?). "
        "Check failures.csv of a plan, or raise --max-invalid",
        guard="max_invalid",
        facts={"invalid": counted.invalid, "rows_total": counted.rows_total, "allowed": allowed},
    )


def refuse_shrink(
    source: str | None, counted: Counted, baseline: Baseline | None, share: float
) -> None:
    if baseline is None or baseline.valid_rows <= 0:
        return
    if counted.valid >= share * baseline.valid_rows:
        return
    raise Refused(
        f"{counted.valid} valid rows, fewer than {share:.0%} of the {baseline.valid_rows} "
        f"this source had in its last finished run ({baseline.describe()}; "
        f"{_pct(counted.valid, baseline.valid_rows)} of them): the run is refused (a truncated "
        "export?). --allow-shrink sends it as it is (a smaller export on purpose); "
        "--min-share P% changes the share",
        guard="shrink",
        facts={
            "source": source, "valid_rows": counted.valid,
            "last_finished_valid_rows": baseline.valid_rows,
            "last_finished_run": baseline.run_id, "min_share": share,
        },
    )  # fmt: skip


# --- during the run ------------------------------------------------------------------------


class FailureWatch:
    """The run's listener, passed on, counting failed rows: once ``limit`` have failed the
    run stops (``--max-failed``)."""

    def __init__(self, listener: Listener, *, limit: int, given: str, stop: Stop) -> None:
        self._listener = listener
        self._limit = limit
        self._given = given
        self._stop = stop
        self.failed = 0

    def rows_settled(self, status: str, n: int) -> None:
        self._listener.rows_settled(status, n)

    def row_failed(self, result: RowResult, phone: str) -> None:
        self._listener.row_failed(result, phone)
        self.failed += 1
        if self.failed >= self._limit:
            self._stop.request(
                Why.FAILURES,
                f"{self.failed} rows failed (--max-failed {self._given}); see failures.csv",
            )

    def batch_done(
        self, rows: pl.DataFrame, original: pl.DataFrame, results: Sequence[RowResult]
    ) -> None:
        self._listener.batch_done(rows, original, results)


# --- plan --------------------------------------------------------------------------------


def plan_lines(options: PlanOptions, counts: Mapping[str, int]) -> tuple[list[str], dict[str, Any]]:
    """What the guards would say of this file in a run: lines for the plan's closing lines,
    and summary.json's ``guards``. A plan knows no organisation: the source's latest finished
    run in the journal, whatever its organisation."""
    total = sum(counts.values())
    valid, invalid = counts.get("valid", 0), counts.get("invalid", 0)
    lines: list[str] = []
    source = source_identity(options.input)
    baseline = last_finished(options.state, source)
    facts: dict[str, Any] = {"source": source, "valid_rows": valid}
    if options.max_invalid is not None:
        allowed = options.max_invalid.rows(total)
        verdict = "a run would refuse" if invalid > allowed else "within it"
        lines.append(
            f"--max-invalid {options.max_invalid.text}: {invalid} of {total} rows invalid "
            f"({_pct(invalid, total)}), {allowed} allowed: {verdict}."
        )
        facts["max_invalid"] = {"invalid": invalid, "allowed": allowed}
    if source is None:
        lines.append("Shrink guard: this input has no lasting name (standard input): none.")
    elif baseline is None:
        why = "no journal" if options.state is None else "no finished run of this source"
        lines.append(f"Shrink guard: {why} yet to compare with.")
    else:
        share = options.min_share
        below = baseline.valid_rows > 0 and valid < share * baseline.valid_rows
        verdict = (
            f"below {share:.0%}: a run would refuse unless --allow-shrink"
            if below
            else f"at least {share:.0%}: fine"
        )
        lines.append(
            f"Shrink guard: {valid} valid rows against {baseline.valid_rows} in the last "
            f"finished run of this source ({baseline.describe()}): "
            f"{_pct(valid, baseline.valid_rows)}, {verdict}."
        )
        facts.update(
            last_finished_valid_rows=baseline.valid_rows, last_finished_run=baseline.run_id,
            min_share=share, would_refuse=below,
        )  # fmt: skip
    return lines, facts
