"""Spreadsheet formula neutralisation for CSV cells, and its exact inverse.

A cell a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) gets a
leading ``'``. Plain numbers such as an E.164 phone (``+6281...``) or ``-3.5`` are left alone.
A cell that already starts with ``'`` before such a character is escaped again, so that
``restore(neutralise(x)) == x`` for every string ``x``.

The rule lives here only: ``neutralise``/``restore`` for single values, and the same two as
polars expressions (``neutralise_expr`` for the reports, ``restore_expr`` for the reader);
tests check that each pair agrees.
"""

from __future__ import annotations

import re

import polars as pl

_TRIGGERS = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def _needs_escape(value: str) -> bool:
    i = 0
    while i < len(value) and value[i] == "'":
        i += 1
    if i >= len(value) or value[i] not in _TRIGGERS:
        return False
    return i > 0 or _NUMBER.fullmatch(value) is None


def neutralise(value: str) -> str:
    """Make ``value`` safe to open in a spreadsheet."""
    return "'" + value if _needs_escape(value) else value


def restore(value: str) -> str:
    """Undo exactly what ``neutralise`` did."""
    if value.startswith("'") and _needs_escape(value[1:]):
        return value[1:]
    return value


def neutralise_expr(column: str) -> pl.Expr:
    """``neutralise`` as a polars expression over a string column (nulls stay null)."""
    col = pl.col(column)
    escape = col.str.contains(r"^'+[=+\-@\t\r]") | (
        col.str.contains(r"^[=+\-@\t\r]") & ~col.str.contains(r"^[+-]?\d+(?:[.,]\d+)?$")
    )
    return pl.when(escape).then(pl.lit("'") + col).otherwise(col).alias(column)


def restore_expr(name: str) -> pl.Expr:
    """``formula.restore`` over a string column: drop a leading ``'`` that ``neutralise`` added."""
    col = pl.col(name)
    strip = col.str.contains(r"^''+[=+\-@\t\r]") | (
        col.str.contains(r"^'[=+\-@\t\r]") & ~col.str.contains(r"^'[+-]?\d+(?:[.,]\d+)?$")
    )
    return pl.when(strip).then(col.str.slice(1)).otherwise(col).alias(name)
