"""Renumbering is never silent: valid rows whose phone cell the journal knows under one number
but that now read as another (a changed ``--default-region``, a changed mapping).

The journal remembers, per organisation and account, which E.164 number each phone cell was
sent as (``Journal.intend`` and ``Journal.remember``), and how it was read then
(``reading``). The cell is its ``phone_key``: the cell as read with its separators dropped,
so ``0812-3456-7890`` and ``0812 3456 7890`` are one cell (and, being parsed as that key, read
alike by construction). A cell's number is a function of the cell and the reading, so only
cells the journal holds under another reading can read differently: a stable nightly job has
none, and compares nothing. When there are some, every valid row is compared: ``plan`` as it
validates, ``run`` in a pass over the file before it sends anything, refusing (exit 2) unless
``--allow-renumber``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
import polars as pl

from importer import __version__
from importer.options import InputOptions
from importer.records import Status, ValidatedBatch, phone_key
from importer.redact import redact

EXAMPLES = 5  # rows shown by name; the count covers them all


def cell_key() -> pl.Expr:
    """A validated row's phone cell as the journal keys it (see the module's docstring)."""
    return phone_key(pl.col("raw_phone"))


def reading(options: InputOptions) -> str:
    """How this run reads phone cells: everything but the cell that decides its number."""
    region = options.default_region or "none"
    return (
        f"default region {region}, phonenumbers {phonenumbers.__version__}, "
        f"importer {__version__}"
    )


@dataclass(frozen=True, slots=True)
class Renumbered:
    """One valid row whose cell the journal knows under another number."""

    row_number: int
    cell: str  # the phone cell as read
    was: str  # the number the journal sent the cell as
    now: str  # the number it reads as now

    def describe(self, *, verbose: bool) -> str:
        text = f"row {self.row_number}: {self.cell.strip()} -> {self.was} -> {self.now}"
        return redact(text, mask_contacts=not verbose)


@dataclass(frozen=True, slots=True)
class Renumbering:
    """What the comparison found: how many rows, and the first few."""

    rows: int = 0
    examples: tuple[Renumbered, ...] = ()

    def lines(self, *, verbose: bool) -> list[str]:
        """The examples, phones masked as the log masks them unless ``verbose``."""
        return [e.describe(verbose=verbose) for e in self.examples]

    def summary(self, *, verbose: bool) -> dict[str, Any]:
        """For summary.json."""
        return {"renumbered": self.rows, "renumbered_examples": self.lines(verbose=verbose)}

    def refusal(self, *, verbose: bool) -> str:
        """Why ``run`` refuses to send (without ``--allow-renumber``)."""
        return (
            f"{self.rows} rows read as another number than the one the journal sent their "
            "phone cell as (another --default-region than before?), e.g. "
            + "; ".join(self.lines(verbose=verbose))
            + " (row: cell -> journal's number -> number now). Run with the options those rows "
            "were sent with, or add --allow-renumber to send them as their new numbers (the "
            "contacts under the old numbers stay in Kirim)"
        )


class Comparison:
    """Counts, a batch at a time, the valid rows whose cell ``known`` (the journal's cells
    read otherwise: (cell, number) pairs) holds under another number."""

    def __init__(self, known: Sequence[tuple[str, str]]) -> None:
        self._known = pl.DataFrame(
            known, schema={"_cell": pl.String, "_was": pl.String}, orient="row"
        )
        self._rows = 0
        self._examples: list[Renumbered] = []

    @property
    def needed(self) -> bool:
        """Whether any row can read as another number (else nothing need be compared)."""
        return self._known.height > 0

    def add(self, rows: pl.DataFrame) -> None:
        """Compare one validated batch's valid rows (``VALIDATED_SCHEMA``)."""
        if not self.needed:
            return
        found = (
            rows.filter(pl.col("status") == Status.VALID.value)
            .select("row_number", "raw_phone", "phone_number", cell_key().alias("_cell"))
            .join(self._known, on="_cell", how="inner", maintain_order="left")
            .filter(pl.col("_was") != pl.col("phone_number"))
            .unique(subset="row_number", keep="first", maintain_order=True)
        )
        self._rows += found.height
        wanted = EXAMPLES - len(self._examples)
        for row, cell, now, was in found.head(max(wanted, 0)).drop("_cell").iter_rows():
            self._examples.append(Renumbered(row, cell, was, now))

    def add_all(self, batches: Iterable[ValidatedBatch]) -> Renumbering:
        for batch in batches:
            self.add(batch.rows)
        return self.result()

    def result(self) -> Renumbering:
        return Renumbering(self._rows, tuple(self._examples))
