"""``kirim-import history``: the runs a journal holds, newest first, one line each.

A line gives the start time, the file, the mode (``--on-existing``), the counts by status,
requests, 429s, the duration, the exit code, the report folder and why it stopped early (if it
did), as recorded when the run finished or stopped (``journal.save_run``). A resumed run keeps
its number and its first start time: its counts are the last invocation's (whose report counts
every row of the run), its requests, 429s and duration the sums over its invocations, and
every invocation's stop reason is listed in order. Rows held back by ``--limit`` are counted
apart from failures. A run without a record (killed, still going, or run by 0.2.0) shows what
the journal has.
``--json`` prints the same, one JSON object per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from importer.send.journal import runs
from importer.send.records import RunLine

_NAMES = {"limit_reached": "held back (--limit)"}


def show(*, state: Path, as_json: bool, out: TextIO) -> int:
    """Print the journal's runs; raises ``JournalError`` when it cannot be read."""
    found = runs(state)
    if not found and not as_json:
        print(f"No runs in {state}.", file=out)
    for line in (json_lines if as_json else lines)(found):
        print(line, file=out)
    return 0


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts).astimezone()


def as_dict(run: RunLine) -> dict[str, Any]:
    r = run.record
    started, ended = _when(run.started_at), _when(run.ended_at)
    return {
        "run_id": run.run_id,
        "started_at": started.isoformat(timespec="seconds") if started else None,
        "ended_at": ended.isoformat(timespec="seconds") if ended else None,
        "finished": run.finished_at is not None,
        "file": r.file if r else None,
        "mode": r.mode if r else None,
        "counts": dict(r.counts) if r else None,
        "requests": r.requests if r else None,
        "http_429": r.http_429 if r else None,
        "retries": r.retries if r else None,
        "duration_s": r.elapsed_s if r else None,
        "exit_code": r.exit_code if r else None,
        "stopped": r.stopped if r else None,
        "stops": list(run.stops),
        "invocations": run.invocations,
        "report_dir": r.report_dir if r else None,
        "org": run.org,
        "account": run.account,
    }


def json_lines(found: Sequence[RunLine]) -> Iterator[str]:
    for run in found:
        yield json.dumps(as_dict(run), ensure_ascii=False)


def _fields(run: RunLine) -> list[str]:
    started = _when(run.started_at)
    head = [f"#{run.run_id}", started.strftime("%Y-%m-%d %H:%M:%S") if started else "-"]
    r = run.record
    if r is None:
        state = "finished" if run.finished_at is not None else "unfinished"
        return [*head, f"{state}, no record (killed, still running, or run by 0.2.0)"]
    counts = ", ".join(f"{n} {_NAMES.get(s, s)}" for s, n in r.counts.items() if n) or "0 rows"
    stops = "; then: ".join(run.stops or ([r.stopped] if r.stopped else []))
    return [
        *head,
        r.file,
        r.mode,
        counts,
        f"{r.requests} requests",
        f"{r.http_429} 429s",
        f"{r.elapsed_s:.1f} s" + (f" in {run.invocations} goes" if run.invocations > 1 else ""),
        f"exit {r.exit_code}",
        r.report_dir,
        *([f"{'stopped' if r.stopped else 'resumed after'}: {stops}"] if stops else []),
    ]


def lines(found: Sequence[RunLine]) -> Iterator[str]:
    """One line per run, its fields in columns."""
    rows = [_fields(run) for run in found]
    widths: dict[int, int] = {}
    for row in rows:
        if len(row) > 3:  # runs with a record line up with each other
            for i, cell in enumerate(row[:-1]):
                widths[i] = max(widths.get(i, 0), len(cell))
    for row in rows:
        padded = [cell.ljust(widths.get(i, 0)) for i, cell in enumerate(row[:-1])]
        yield "  ".join([*padded, row[-1]]).rstrip()
