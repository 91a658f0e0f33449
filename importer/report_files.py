"""Writing the report's four files: ``results.csv`` and ``failures.csv`` appended a batch at
a time (memory stays flat), ``summary.json`` and ``report.html`` at the end; every file
private (``0600`` in a ``0700`` folder) and written under a ``.partial`` name, moved into
place only when all four are whole, so a crash never leaves a report that looks complete.

Every CSV cell a spreadsheet would run as a formula is neutralised, header cells included
(see ``formula``). A write that fails is told once to ``on_failure`` (the run's stop): from
then on nothing more is written, and the partial files stay as they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import polars as pl

from importer.errors import ReportError
from importer.formula import neutralise, neutralise_expr
from importer.private import open_private, private_folder

FILES = ("results.csv", "failures.csv", "summary.json", "report.html")


class ReportFiles:
    def __init__(self, *, directory: Path, on_failure: Callable[[str], None] | None) -> None:
        self.directory = directory
        self.broken: str | None = None  # why the files could not be written, once they could not
        self._on_failure = on_failure
        self._headers = {"results.csv": True, "failures.csv": True}
        try:
            private_folder(directory)
            self._handles: dict[str, IO[bytes]] = {
                name: os.fdopen(open_private(self._partial(name)), "wb") for name in self._headers
            }
        except OSError as exc:
            raise ReportError(_cannot_write(directory, exc)) from None

    def _partial(self, name: str) -> Path:
        return self.directory / f"{name}.partial"

    def _broke(self, exc: OSError) -> None:
        if self.broken is None:
            self.broken = _cannot_write(self.directory, exc)
            if self._on_failure is not None:
                self._on_failure(self.broken)

    def append(self, results: pl.DataFrame, failures: pl.DataFrame) -> None:
        """A batch's rows of results.csv and failures.csv (a header with the first)."""
        if self.broken is not None:
            return
        try:
            for name, frame in (("results.csv", results), ("failures.csv", failures)):
                if frame.height or self._headers[name]:
                    _append(self._handles[name], frame, header=self._headers[name])
                    self._headers[name] = False
        except OSError as exc:
            self._broke(exc)

    def finish(self, *, summary_json: str, page: Callable[[], str]) -> None:
        """Close the CSVs, write summary.json and the page (``page`` is only asked when the
        files are still whole), and put the four in place."""
        try:
            self.abandon(quiet=False)
            if self.broken is None:
                _write_private(self._partial("summary.json"), summary_json)
                _write_private(self._partial("report.html"), page())
                for name in FILES:
                    os.replace(self._partial(name), self.directory / name)
        except OSError as exc:
            self._broke(exc)

    def abandon(self, *, quiet: bool = True) -> None:
        """Close the partial CSVs without putting them in place."""
        for handle in self._handles.values():
            if quiet:
                with contextlib.suppress(OSError):
                    handle.close()
            else:
                handle.close()


def _write_private(path: Path, text: str) -> None:
    with os.fdopen(open_private(path), "w", encoding="utf-8") as handle:
        handle.write(text)


def _cannot_write(directory: Path, exc: OSError) -> str:
    return f"cannot write the report in {directory}: {exc.strerror or exc}"


def _append(handle: IO[bytes], frame: pl.DataFrame, *, header: bool) -> None:
    """The frame's rows (and its header, when asked) as CSV, every cell formula-safe: the
    header's cells too (failures.csv repeats the input's own)."""
    text = [c for c, t in frame.schema.items() if t == pl.String]
    safe = frame.with_columns(neutralise_expr(c) for c in text)
    if header:
        safe.columns = neutralise(safe.columns)  # one to one: restore gives each name back
    safe.write_csv(handle, include_header=header)
