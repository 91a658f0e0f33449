"""Formula neutralisation (the report) and its inverse (the reader), held to the rule as a
spreadsheet applies it, and to each other, on every string."""

from __future__ import annotations

import re

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.formula import neutralise, neutralise_expr, restore, restore_expr

_TRICKY = st.text(alphabet=st.sampled_from("'=+-@\t\r0123456789.,a٣ "), max_size=8)
CELLS = st.lists(_TRICKY | st.text(max_size=12), max_size=20)


def column(values: list[str | None], expr: pl.Expr) -> list[str | None]:
    frame = pl.DataFrame({"c": values}, schema={"c": pl.String})
    return frame.select(expr)["c"].to_list()


def runs_as_formula(cell: str) -> bool:
    """What a spreadsheet does with a cell: a trigger first, and it is not a plain number."""
    return bool(cell) and cell[0] in "=+-@\t\r" and not re.fullmatch(r"[+-]?\d+([.,]\d+)?", cell)


@settings(max_examples=500, deadline=None)
@given(CELLS)
def test_no_neutralised_cell_runs_as_a_formula(values: list[str]) -> None:
    for before, after in zip(values, column(list(values), neutralise_expr("c")), strict=True):
        assert after is not None
        assert not runs_as_formula(after)
        assert after in (before, "'" + before)


@settings(max_examples=500, deadline=None)
@given(CELLS)
def test_restore_inverts_neutralise(values: list[str]) -> None:
    neutralised = column([*values, None], neutralise_expr("c"))
    assert column(neutralised, restore_expr("c")) == [*values, None]


def test_examples() -> None:
    cells = ["=HYPERLINK(1)", "+6281234567890", "-3.5", "@bob", "'=x", "plain", "\tx", "-"]
    assert column(list(cells), neutralise_expr("c")) == [
        "'=HYPERLINK(1)", "+6281234567890", "-3.5", "'@bob", "''=x", "plain", "'\tx", "'-",
    ]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(CELLS)
def test_a_header_row_goes_through_the_same_rule(values: list[str]) -> None:
    assert neutralise(values) == column(list(values), neutralise_expr("c"))
    assert restore(neutralise(values)) == values
