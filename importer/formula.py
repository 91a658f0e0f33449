"""Spreadsheet formula neutralisation for CSV cells, and its exact inverse, as polars
expressions: the report writes through ``neutralise_expr``, the reader reads through
``restore_expr``; header cells go through the same expressions (``neutralise``,
``restore``). The rule is written once, in the patterns below.

A cell a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) gets a
leading ``'``. Plain numbers such as an E.164 phone (``+6281...``) or ``-3.5`` are left alone.
A cell that already starts with ``'`` before such a character is escaped again, so restoring
what was neutralised gives back every string exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

_TRIGGER = r"[=+\-@\t\r]"  # what makes a spreadsheet read a cell as a formula
_NUMBER = r"[+-]?\d+(?:[.,]\d+)?"  # ...unless the cell is just a number


def _escaped(col: pl.Expr, quotes: str) -> pl.Expr:
    """True where ``col`` is ``quotes`` followed by a cell that ``neutralise`` escapes."""
    return col.str.contains(f"^{quotes}'+{_TRIGGER}") | (
        col.str.contains(f"^{quotes}{_TRIGGER}") & ~col.str.contains(f"^{quotes}{_NUMBER}$")
    )


def neutralise_expr(column: str) -> pl.Expr:
    """Make a string column safe to open in a spreadsheet (nulls stay null)."""
    col = pl.col(column)
    return pl.when(_escaped(col, "")).then(pl.lit("'") + col).otherwise(col).alias(column)


def restore_expr(column: str) -> pl.Expr:
    """Undo exactly what ``neutralise_expr`` did: drop the ``'`` it added."""
    col = pl.col(column)
    return pl.when(_escaped(col, "'")).then(col.str.slice(1)).otherwise(col).alias(column)


def _through(values: Sequence[str], expr: pl.Expr) -> list[str]:
    frame = pl.DataFrame({"cell": list(values)}, schema={"cell": pl.String})
    return [str(v) for v in frame.select(expr)["cell"]]


def neutralise(cells: Sequence[str]) -> list[str]:
    """``neutralise_expr`` for a list of cells, such as a header row."""
    return _through(cells, neutralise_expr("cell"))


def restore(cells: Sequence[str]) -> list[str]:
    """``restore_expr`` for a list of cells, such as a header row."""
    return _through(cells, restore_expr("cell"))
