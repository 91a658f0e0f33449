"""The reader's vectorised formula.restore agrees with formula.restore on every string."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.formula import neutralise, restore, restore_expr

_TRICKY = st.text(alphabet=st.sampled_from("'=+-@\t\r0123456789.,a٣ "), max_size=8)


@settings(max_examples=500, deadline=None)
@given(st.lists(_TRICKY | st.text(max_size=12), max_size=20))
def test_restore_expr_agrees_with_restore(values: list[str]) -> None:
    frame = pl.DataFrame({"c": [*values, None]}, schema={"c": pl.String})
    got = frame.select(restore_expr("c"))["c"].to_list()
    assert got == [*(restore(v) for v in values), None]


@settings(max_examples=300, deadline=None)
@given(st.lists(_TRICKY | st.text(max_size=12), max_size=20))
def test_restore_expr_inverts_neutralise(values: list[str]) -> None:
    frame = pl.DataFrame({"c": [neutralise(v) for v in values]}, schema={"c": pl.String})
    assert frame.select(restore_expr("c"))["c"].to_list() == values
