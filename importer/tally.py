"""Counting: every row's status and reason, the summary they make, and the exit code.

One ``Tally`` per command hears each batch (its rows merged with what became of them) and
keeps only counters, so memory stays flat. The exit code is decided here and nowhere else:
0 every row fine (an in-file duplicate and the codes a run ignores, such as
``limit_reached``, included); 1 some rows invalid or failed, or a wanted label not attached;
3 stopped early or a report file that could not be written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from importer.records import Status

_STATUSES = frozenset(s.value for s in Status)


@dataclass(frozen=True, slots=True)
class RunStats:
    """Network-side figures for the summary (zero for a plan)."""

    requests_sent: int = 0
    http_429: int = 0
    retries: int = 0
    stopped: str | None = None  # why the run stopped early, if it did
    ignore_codes: frozenset[str] = field(default_factory=frozenset)  # not counted as failures
    labels_failed: int = 0  # wanted labels that could not be attached (``send.labeltally``)


class Tally:
    def __init__(self, *, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.retryable = 0  # failed rows a rerun may yet settle
        # account -> status -> rows ("": rows without one); in summary.json when rows named
        # accounts (a file with an account column)
        self.by_account: dict[str, Counter[str]] = {}

    @property
    def rows_total(self) -> int:
        return sum(self.counts.values())

    def add(self, merged: pl.DataFrame) -> None:
        """Count a batch: its ``status``, ``error_code`` and ``retryable`` columns (and, in a
        file with an account column, ``account``)."""
        counts = dict(merged.group_by("status").len().iter_rows())
        self.counts.update(counts)
        self.retryable += merged.filter(
            (pl.col("status") == Status.FAILED.value) & pl.col("retryable").fill_null(False)
        ).height
        problems = merged.filter(pl.col("error_code").is_not_null())
        self.reasons.update(dict(problems.group_by("error_code").len().iter_rows()))
        if "account" not in merged.columns or merged["account"].null_count() == merged.height:
            self.by_account.setdefault("", Counter()).update(counts)
            return
        for account, status, n in merged.group_by("account", "status").len().iter_rows():
            self.by_account.setdefault(account or "", Counter())[status] += n

    def exit_code(self, stats: RunStats, *, broken: bool = False) -> int:
        if stats.stopped or broken:
            return 3
        bad = sum(
            n
            for code, n in self.reasons.items()
            if code not in stats.ignore_codes and code != "duplicate_in_file"
        )
        return 1 if bad or stats.labels_failed else 0

    def summary(
        self, *, stats: RunStats, elapsed_s: float, extra: Mapping[str, Any], broken: str | None
    ) -> dict[str, Any]:
        """summary.json's content: counts that add up to ``rows_total``, every status of the
        command present, the reasons, the network figures, the exit code."""
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
            exit_code=self.exit_code(stats, broken=broken is not None),
            stopped=stats.stopped or broken,
            **extra,
        )
        if set(self.by_account) - {""}:  # per account, every status of the command present
            summary["accounts"] = {
                account: {s.value: counts.get(s.value, 0) for s in (
                    *statuses, Status.DUPLICATE_IN_FILE, Status.INVALID, Status.FAILED
                )}
                for account, counts in sorted(self.by_account.items())
            }  # fmt: skip
        return summary


def status_counts(summary: Mapping[str, Any]) -> dict[str, int]:
    """The summary's counts by status, in its order: whatever statuses it has."""
    return {k: v for k, v in summary.items() if k in _STATUSES}
