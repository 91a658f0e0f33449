"""The report: one object counts every row's outcome, writes the files, and picks the exit code.

Rows arrive a batch at a time, in input order (``add_batch``), each batch being the validated
rows plus what became of the ones that reached the sending stage. The report appends them to
``results.csv`` and ``failures.csv`` as it goes, so memory stays flat, and keeps the counts.
``finish`` writes ``summary.json`` and ``report.html`` (the page: ``importer.page``) and only
then moves the four files into place, so a crash never leaves a half-written report that
looks whole (the partial files keep a ``.partial`` suffix).

Every CSV cell a spreadsheet would run as a formula is neutralised (see ``formula``).
``failures.csv`` has the input's own columns, unchanged, plus ``row_number``,
``error_code``, ``error_message`` and ``retryable``: fix it in a spreadsheet, feed it back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl

from importer import page
from importer.errors import ReportError
from importer.formula import neutralise, neutralise_expr
from importer.options import WRITE_PER_MINUTE
from importer.private import open_private, private_folder
from importer.read.records import FAILURE_COLUMNS, SOURCE_ROW
from importer.records import Status
from importer.send.records import RowResult

RESULT_COLUMNS = (
    "row_number",
    SOURCE_ROW,
    "status",
    "phone_number",
    "email",
    "name",
    "contact_id",
    "http_status",
    "error_code",
    "error_message",
    "warning",
    "duplicate_of",
    "request_id",
    "attempts",
    "replayed",
    "raw_phone",
    "phone_region",
    "region_source",
    "number_type",
    "labels",
)
_SENT_SCHEMA: dict[str, Any] = {
    "row_number": pl.Int64,
    "sent_status": pl.String,
    "contact_id": pl.String,
    "http_status": pl.Int64,
    "sent_error_code": pl.String,
    "sent_error_message": pl.String,
    "request_id": pl.String,
    "attempts": pl.Int64,
    "replayed": pl.Boolean,
    "retryable": pl.Boolean,
    "sent_labels": pl.String,
    "sent_warning": pl.String,
}
_FILES = ("results.csv", "failures.csv", "summary.json", "report.html")
_STATUSES = frozenset(s.value for s in Status)


@dataclass(frozen=True, slots=True)
class RunStats:
    """Network-side figures for the summary (zero for a plan)."""

    requests_sent: int = 0
    http_429: int = 0
    retries: int = 0
    stopped: str | None = None  # why the run stopped early, if it did
    ignore_codes: frozenset[str] = field(default_factory=frozenset)  # not counted as failures


class Report:
    """``on_failure`` hears (once) that a file could not be written: from then on the report
    only counts, the run stops, and the exit code is 3."""

    def __init__(
        self,
        *,
        directory: Path,
        dry_run: bool,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self.dry_run = dry_run
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.summary: dict[str, Any] = {}
        self.broken: str | None = None  # why the files could not be written, once they could not
        self.retryable = 0  # failed rows a rerun may yet settle
        self._on_failure = on_failure
        self._results_header = True
        self._failures_header = True
        try:
            private_folder(directory)
            self._results: IO[bytes] = os.fdopen(open_private(self._partial("results.csv")), "wb")
            self._failures: IO[bytes] = os.fdopen(
                open_private(self._partial("failures.csv")), "wb"
            )
        except OSError as exc:
            raise ReportError(_cannot_write(directory, exc)) from None
        self.facts = page.Facts()  # what the page shows beyond the counts

    def _broke(self, exc: OSError) -> None:
        if self.broken is None:
            self.broken = _cannot_write(self.directory, exc)
            if self._on_failure is not None:
                self._on_failure(self.broken)

    def _partial(self, name: str) -> Path:
        return self.directory / f"{name}.partial"

    @property
    def rows_total(self) -> int:
        return sum(self.counts.values())

    def add_batch(
        self, *, rows: pl.DataFrame, original: pl.DataFrame, results: Sequence[RowResult] = ()
    ) -> None:
        """Account for one batch of rows, in input order."""
        merged = _merge(rows, results)
        if not self.dry_run:  # a run shows the labels attached, a plan the ones it would attach
            merged = merged.with_columns(pl.col("sent_labels").alias("labels"))
        merged = merged.drop("sent_labels").with_columns(
            original[SOURCE_ROW].cast(pl.Int64, strict=False).alias(SOURCE_ROW)
            if SOURCE_ROW in original.columns
            else pl.col("row_number").alias(SOURCE_ROW)
        )
        self.counts.update(dict(merged.group_by("status").len().iter_rows()))
        self.retryable += merged.filter(
            (pl.col("status") == Status.FAILED.value) & pl.col("retryable").fill_null(False)
        ).height
        problems = merged.filter(pl.col("error_code").is_not_null())
        self.reasons.update(dict(problems.group_by("error_code").len().iter_rows()))
        if self.broken is not None:
            return  # counted; the files are gone for this run
        self.facts.add(merged)
        is_failure = merged["status"].is_in([Status.INVALID.value, Status.FAILED.value])
        keep = [c for c in original.columns if c not in FAILURE_COLUMNS]
        failures = pl.concat(
            [original.select(keep), merged.select(FAILURE_COLUMNS)], how="horizontal"
        ).filter(is_failure)
        try:
            _append(self._results, merged.select(RESULT_COLUMNS), header=self._results_header)
            self._results_header = False
            if failures.height or self._failures_header:
                _append(self._failures, failures, header=self._failures_header)
                self._failures_header = False
        except OSError as exc:
            self._broke(exc)

    def exit_code(self, stats: RunStats) -> int:
        if stats.stopped or self.broken:
            return 3
        bad = sum(
            n
            for code, n in self.reasons.items()
            if code not in stats.ignore_codes and code != "duplicate_in_file"
        )
        return 1 if bad else 0

    def finish(
        self,
        *,
        stats: RunStats,
        elapsed_s: float,
        extra: dict[str, Any],
        context: page.Context | None = None,
    ) -> int:
        """Write summary.json and report.html, put the four files in place, and return the
        exit code. When a file cannot be written the partial files stay as they are, and the
        code is 3."""
        code = self.exit_code(stats)
        summary: dict[str, Any] = {"rows_total": self.rows_total}
        statuses = (
            (Status.VALID,)
            if self.dry_run
            else (Status.CREATED, Status.UPDATED, Status.UNCHANGED, Status.EXISTS)
        )
        for status in (*statuses, Status.DUPLICATE_IN_FILE, Status.INVALID, Status.FAILED):
            summary[status.value] = self.counts.get(status.value, 0)
        summary.update(
            reasons=dict(sorted(self.reasons.items())),
            requests_sent=stats.requests_sent,
            http_429=stats.http_429,
            retries=stats.retries,
            elapsed_s=round(elapsed_s, 3),
            exit_code=code,
            stopped=stats.stopped or self.broken,
            **extra,
        )
        self.summary = summary
        try:
            self._results.close()
            self._failures.close()
            if self.broken is None:
                _write_private(self._partial("summary.json"), json.dumps(summary, indent=2) + "\n")
                context = context or page.Context()
                closing = self.render(
                    write_per_minute=context.write_per_minute, journal=context.journal
                )
                counts = {"rows_total": self.rows_total, **status_counts(summary)}
                the_page = page.render(
                    summary=summary, counts=counts, facts=self.facts, context=context,
                    closing=closing,
                )  # fmt: skip
                _write_private(self._partial("report.html"), the_page)
                for name in _FILES:
                    os.replace(self._partial(name), self.directory / name)
        except OSError as exc:
            self._broke(exc)
        if self.broken is not None:
            summary.update(exit_code=3, stopped=summary["stopped"] or self.broken)
            return 3
        return code

    def render(
        self, *, write_per_minute: float = WRITE_PER_MINUTE, journal: Path | None = None
    ) -> str:
        """The closing lines a person reads; the last one names the report folder."""
        c, summary = self.counts, self.summary
        if self.dry_run:
            head = f"would create {c.get('valid', 0)}"
        else:
            shown = ("created", "updated", "unchanged", "exists")
            head = ", ".join(f"{c.get(s, 0)} {s}" for s in shown)
        lines = [
            f"{self.rows_total} rows: {head}, {c.get('duplicate_in_file', 0)} duplicate in "
            f"file, {c.get('invalid', 0)} invalid, {c.get('failed', 0)} failed"
        ]
        if self.reasons:
            ordered = sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.append("  by reason: " + ", ".join(f"{k} {v}" for k, v in ordered))
            if self.reasons.get("no_region"):
                lines.append(
                    "  (numbers written without a country code need --default-region CC, "
                    "e.g. --default-region ID)"
                )
        if renumbered := summary.get("renumbered"):  # see send.renumber
            what = (
                "the journal knows their phone cell under another number: a run sends nothing "
                "without --allow-renumber"
                if self.dry_run
                else "the journal knew their phone cell under another number; sent as the new "
                "one (--allow-renumber)"
            )
            examples = "; ".join(summary.get("renumbered_examples", ()))
            lines.append(f"  renumbered {renumbered} ({what}): {examples}")
        if self.dry_run:
            valid, capacity = c.get("valid", 0), write_per_minute
            if valid == 0:
                lines.append("Nothing to create.")
            elif valid <= capacity:
                when = "fits in the bucket's first burst: seconds, bounded by round trips"
            else:
                eta = duration((valid - capacity) / (capacity / 60))
                when = f"would take about {eta} after the first burst of {capacity:.0f}"
            if valid:
                lines.append(f"At {capacity:.0f} writes/min, creating {valid} contacts {when}.")
        else:
            lines.append(
                f"Requests: {summary['requests_sent']} sent, {summary['http_429']} answered "
                f"429, {summary['retries']} retries, {summary['elapsed_s']:.1f} s"
            )
        if summary.get("stopped"):
            lines.append(f"Stopped early: {summary['stopped']}")
            if journal is not None and self.retryable:  # something to resume
                lines.append(
                    f"Rerun the same command to resume: finished rows are kept in {journal}."
                )
        if self.broken is not None:
            lines.append(f"Reports incomplete: {self.broken} (partial files left as they are)")
        else:
            lines.append(f"Report page: {self.directory / 'report.html'}")
        lines.append(f"Reports: {self.directory}")
        return "\n".join(lines)

    def abandon(self) -> None:
        """Close the partial files without putting them in place."""
        for handle in (self._results, self._failures):
            with contextlib.suppress(OSError):
                handle.close()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        """An exception leaves the partial files where they are, closed; otherwise the
        files stay open for ``finish``."""
        if exc_type is not None:
            self.abandon()


def status_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    """The summary's counts by status, in its order: whatever statuses it has."""
    return {k: v for k, v in summary.items() if k in _STATUSES}


def _merge(rows: pl.DataFrame, results: Sequence[RowResult]) -> pl.DataFrame:
    """The validated rows with what became of each row that reached the sending stage."""
    if not results:
        return rows.with_columns(
            pl.lit(None, pl.String).alias("contact_id"),
            pl.lit(None, pl.Int64).alias("http_status"),
            pl.lit(None, pl.String).alias("request_id"),
            pl.lit(None, pl.Int64).alias("attempts"),
            pl.lit(None, pl.Boolean).alias("replayed"),
            pl.lit(None, pl.String).alias("sent_labels"),
            pl.when(pl.col("status") == Status.INVALID.value)
            .then(pl.lit(False))
            .when(pl.col("status") == Status.FAILED.value)
            .then(pl.lit(True))  # never sent (the run stopped first): send it next time
            .otherwise(pl.lit(None, pl.Boolean))
            .alias("retryable"),
        )
    outcomes = pl.DataFrame(
        [
            (
                s.row_number,
                s.status.value,
                s.contact_id,
                s.http_status,
                s.error_code,
                s.error_message,
                s.request_id,
                s.attempts,
                s.replayed,
                s.retryable,
                s.labels,
                s.warning,
            )
            for s in results
        ],
        schema=_SENT_SCHEMA,
        orient="row",
    )
    merged = rows.join(outcomes, on="row_number", how="left", maintain_order="left")
    return merged.with_columns(
        pl.coalesce("sent_status", "status").alias("status"),
        pl.coalesce("sent_error_code", "error_code").alias("error_code"),
        pl.coalesce("sent_error_message", "error_message").alias("error_message"),
        pl.concat_str("warning", "sent_warning", separator="; ", ignore_nulls=True)
        .replace("", None)
        .alias("warning"),
        pl.when(pl.col("status") == Status.INVALID.value)
        .then(pl.lit(False))
        .otherwise(pl.col("retryable"))
        .alias("retryable"),
    ).drop("sent_status", "sent_error_code", "sent_error_message", "sent_warning")


def _write_private(path: Path, text: str) -> None:
    with os.fdopen(open_private(path), "w", encoding="utf-8") as handle:
        handle.write(text)


def _cannot_write(directory: Path, exc: OSError) -> str:
    return f"cannot write the report in {directory}: {exc.strerror or exc}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _append(handle: IO[bytes], frame: pl.DataFrame, *, header: bool) -> None:
    """The frame's rows (and its header, when asked) as CSV, every cell formula-safe: the
    header's cells too (failures.csv repeats the input's own)."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    safe = frame.with_columns(neutralise_expr(c) for c in text)
    if header:
        safe.columns = neutralise(safe.columns)  # one to one: restore gives each name back
    safe.write_csv(handle, include_header=header)
