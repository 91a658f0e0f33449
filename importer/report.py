"""The report: every row's outcome, counted (``tally``), written (``report_files``) and told
in closing lines (``closing_lines``), put together by one ``Report`` the pipeline talks to.

Rows arrive a batch at a time, in input order (``add_batch``), each batch being the validated
rows plus what became of the ones that reached the sending stage: merged here (``_merge``),
counted, and appended to ``results.csv`` and ``failures.csv`` as they go, so memory stays
flat. ``finish`` writes ``summary.json`` and ``report.html`` (the page: ``importer.page``)
and only then moves the four files into place.

Every CSV cell a spreadsheet would run as a formula is neutralised (see ``formula``).
``failures.csv`` has the input's own columns, unchanged, plus ``row_number``,
``error_code``, ``error_message`` and ``retryable``: fix it in a spreadsheet, feed it back.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from importer import page
from importer.options import WRITE_PER_MINUTE
from importer.read.records import FAILURE_COLUMNS, SOURCE_ROW
from importer.records import Status
from importer.report_files import ReportFiles
from importer.send.labeltally import closing_line as labels_line
from importer.send.records import RowResult
from importer.tally import RunStats, Tally, status_counts

__all__ = ["RESULT_COLUMNS", "Report", "RunStats", "closing_lines", "duration", "status_counts"]

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
    "account",  # the account the row went to (a file with an account column), else empty
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
class Report:
    """The report of one command: what the rows became, counted (``Tally``: counts, reasons,
    summary, exit code), written (``ReportFiles``), and told in closing lines (``render``).
    ``on_failure`` hears (once) that a file could not be written: from then on the report
    only counts, the run stops, and the exit code is 3."""

    def __init__(
        self,
        *,
        directory: Path,
        dry_run: bool,
        on_failure: Callable[[str], None] | None = None,
        row_key: str | None = None,
    ) -> None:
        self.directory = directory
        self.row_key = row_key  # --row-key: results.csv names each row by it (``row_key``)
        self.dry_run = dry_run
        self.tally = Tally(dry_run=dry_run)
        self.files = ReportFiles(directory=directory, on_failure=on_failure)
        self.summary: dict[str, Any] = {}
        self.facts = page.Facts()  # what the page shows beyond the counts

    @property
    def counts(self) -> Counter[str]:
        return self.tally.counts

    @property
    def broken(self) -> str | None:
        return self.files.broken

    @property
    def rows_total(self) -> int:
        return self.tally.rows_total

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
        self.tally.add(merged)
        if self.broken is not None:
            return  # counted; the files are gone for this run
        self.facts.add(merged)
        is_failure = merged["status"].is_in([Status.INVALID.value, Status.FAILED.value])
        keep = [c for c in original.columns if c not in FAILURE_COLUMNS]
        failures = pl.concat(
            [original.select(keep), merged.select(FAILURE_COLUMNS)], how="horizontal"
        ).filter(is_failure)
        named = merged.select(RESULT_COLUMNS)
        if self.row_key is not None and self.row_key in original.columns:
            named = named.insert_column(1, original[self.row_key].alias("row_key"))
        self.files.append(named, failures)

    def add_detached(self, detached: pl.DataFrame, *, failed: int = 0) -> None:
        """``--sync-label``'s detached contacts (``phone_number``, ``contact_id``, ``labels``:
        the label), appended to results.csv as rows of status ``detached`` after the input's
        rows; they are no input row, so they are counted apart (summary.json's
        ``detached``), with an empty ``row_key`` under ``--row-key``.
        ``failed``: contacts whose detach call failed, counted as the reason
        ``detach_failed`` (exit 1; the next run tries again)."""
        if failed:
            self.tally.reasons["detach_failed"] += failed
        if self.broken is not None or not detached.height:
            return
        rows = detached.with_columns(pl.lit("detached").alias("status"))
        rows = rows.select(
            pl.col(c) if c in rows.columns else pl.lit(None, pl.String).alias(c)
            for c in RESULT_COLUMNS
        )
        if self.row_key is not None:  # the input's rows have the column: no input row's key
            rows = rows.insert_column(1, pl.lit(None, pl.String).alias("row_key"))
        self.files.append(rows, pl.DataFrame())

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
        summary = self.tally.summary(
            stats=stats, elapsed_s=elapsed_s, extra=extra, broken=self.broken
        )
        self.summary = summary
        shown = context or page.Context()

        def the_page() -> str:
            closing = self.render(write_per_minute=shown.write_per_minute, journal=shown.journal)
            counts = {"rows_total": self.rows_total, **status_counts(summary)}
            return page.render(
                summary=summary, counts=counts, facts=self.facts, context=shown, closing=closing
            )

        self.files.finish(summary_json=json.dumps(summary, indent=2) + "\n", page=the_page)
        if self.broken is not None:
            summary.update(exit_code=3, stopped=summary["stopped"] or self.broken)
            return 3
        return int(summary["exit_code"])

    def render(
        self, *, write_per_minute: float = WRITE_PER_MINUTE, journal: Path | None = None
    ) -> str:
        """The closing lines a person reads; the last one names the report folder."""
        return closing_lines(
            self.tally, self.summary, write_per_minute=write_per_minute, journal=journal,
            directory=self.directory, broken=self.broken,
        )  # fmt: skip

    def abandon(self) -> None:
        """Close the partial files without putting them in place."""
        self.files.abandon()

    def __enter__(self) -> Report:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        """An exception leaves the partial files where they are, closed; otherwise the
        files stay open for ``finish``."""
        if exc_type is not None:
            self.abandon()


def closing_lines(
    tally: Tally,
    summary: Mapping[str, Any],
    *,
    write_per_minute: float,
    journal: Path | None,
    directory: Path,
    broken: str | None,
) -> str:
    """The closing lines: counts, reasons, the time a plan's writes would take or what a run
    sent, why it stopped and whether a rerun resumes, where the report is."""
    c, dry_run = tally.counts, tally.dry_run
    if dry_run:
        head = f"would create {c.get('valid', 0)}"
    else:
        shown = ("created", "updated", "unchanged", "exists")
        head = ", ".join(f"{c.get(s, 0)} {s}" for s in shown)
    lines = [
        f"{tally.rows_total} rows: {head}, {c.get('duplicate_in_file', 0)} duplicate in "
        f"file, {c.get('invalid', 0)} invalid, {c.get('failed', 0)} failed"
    ]
    if tally.reasons:
        ordered = sorted(tally.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("  by reason: " + ", ".join(f"{k} {v}" for k, v in ordered))
        if tally.reasons.get("no_region"):
            lines.append(
                "  (numbers written without a country code need --default-region CC, "
                "e.g. --default-region ID)"
            )
    if renumbered := summary.get("renumbered"):  # see send.renumber
        what = (
            "the journal knows their phone cell under another number: a run sends nothing "
            "without --allow-renumber"
            if dry_run
            else "the journal knew their phone cell under another number; sent as the new "
            "one (--allow-renumber)"
        )
        examples = "; ".join(summary.get("renumbered_examples", ()))
        lines.append(f"  renumbered {renumbered} ({what}): {examples}")
    if (sync := summary.get("sync_labels")) is not None:  # --sync-label (mirror)
        verb = "would detach" if dry_run else "detached"
        lines.append(
            "  --sync-label: "
            + ", ".join(
                f"{name!r} {'would attach ' + str(s['would_attach']) + ', ' if dry_run else ''}"
                f"{verb} {s['left_source'] if dry_run else s['detached']}"
                for name, s in sync.items()
            )
        )
    if dry_run:
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
    if (labelled := labels_line(summary.get("labels"))) is not None:
        lines.append(labelled)
    if summary.get("stopped"):
        lines.append(f"Stopped early: {summary['stopped']}")
        if journal is not None and tally.retryable:  # something to resume
            lines.append(f"Rerun the same command to resume: finished rows are kept in {journal}.")
    if broken is not None:
        lines.append(f"Reports incomplete: {broken} (partial files left as they are)")
    else:
        lines.append(f"Report page: {directory / 'report.html'}")
    lines.append(f"Reports: {directory}")
    return "\n".join(lines)


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


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


