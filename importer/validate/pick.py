"""Which of a row's phone cells is its phone, when a file has several phone columns (Google
Contacts and Outlook exports carry four or more) or typed ones.

A row's cells are tried in the mapping's order of kinds (a WhatsApp column, a mobile one,
``Primary Phone``, the others: ``mapping.resolve``), where a typed cell (Google's ``Phone 1 -
Label`` is ``Mobile``) counts as a mobile one and a cell typed as a fax is never tried. The
first cell that is neither empty nor holds several numbers is the phone; the row gets a
warning when the first column was empty or a cell was passed over for holding several numbers.
When every cell holds several numbers, the first one's reason is the row's.

``candidates`` lists every row's cells in the order they are tried (before parsing, so the
parser sees each of them once per unique value); ``chosen`` picks one per row once they are
parsed. A single untyped phone column needs neither: its cell is the phone.
"""

from __future__ import annotations

from typing import NamedTuple

import polars as pl

from importer.read.headers import PHONE_KINDS
from importer.validate.mapping import phone_type
from importer.validate.records import ColumnMapping

_RANKS = {kind: rank for rank, kind in enumerate(PHONE_KINDS)}
_MOBILE_RANK = _RANKS["mobile"]
SEVERAL = "several_numbers"


class Candidates(NamedTuple):
    """A batch's phone cells in the order they are tried, and what else a row's message needs."""

    columns: tuple[str, ...]  # the phone columns; ``_from`` indexes them
    cells: pl.DataFrame  # _at (row index), _phone_key (the cell), _from, _slot: tried in order
    rows: pl.DataFrame  # one per row: _at, _first_empty, _fax (a fax column, quoted, or null)


def candidates(batch: pl.DataFrame, mapping: ColumnMapping) -> Candidates | None:
    """Every row's non-empty, non-fax phone cells in the order they are tried; None when the
    file has one untyped phone column."""
    columns = (mapping.phone, *mapping.phone_fallbacks)
    if len(columns) == 1 and not mapping.phone_types:
        return None
    # each column's cell, whether it is filled, and its type, computed once (``_c1``, ...)
    steps: list[pl.Expr] = []
    slots: list[tuple[int, int, pl.Expr]] = []  # (rank, column index, when the cell is tried)
    faxes: list[pl.Expr] = []
    for i, column in enumerate(columns):
        cell, filled = pl.col(f"_c{i}"), pl.col(f"_f{i}")
        steps += [
            pl.col(column).alias(cell.meta.output_name()),
            (pl.col(column).str.strip_chars().str.len_chars() > 0).fill_null(False)
            .alias(filled.meta.output_name()),
        ]  # fmt: skip
        rank = _RANKS.get(mapping.phone_kinds.get(column, "phone"), len(_RANKS))
        typed = mapping.phone_types.get(column)
        if typed is None:
            slots.append((rank, i, filled))
            continue
        kind = pl.col(f"_k{i}")
        steps.append(_kinds(batch[typed]).alias(kind.meta.output_name()))
        faxes.append(pl.when(filled & (kind == "fax")).then(pl.lit(repr(column))))
        if rank <= _MOBILE_RANK:
            slots.append((rank, i, filled & (kind != "fax")))
        else:
            slots.append((_MOBILE_RANK, i, filled & (kind == "mobile")))
            slots.append((rank, i, filled & (kind == "other")))
    slots.sort(key=lambda slot: slot[:2])
    parts = batch.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_at"), *steps)
    cells = pl.concat(
        [
            parts.filter(w).select(
                "_at",
                pl.col(f"_c{i}").alias("_phone_key"),
                pl.lit(i, pl.Int32).alias("_from"),
                pl.lit(k, pl.Int32).alias("_slot"),
            )
            for k, (_, i, w) in enumerate(slots)
        ]
    ).sort("_at", "_slot")
    rows = parts.select(
        "_at",
        (~pl.col("_f0")).alias("_first_empty"),
        (pl.coalesce(faxes) if faxes else pl.lit(None, pl.String)).alias("_fax"),
    )
    return Candidates(columns, cells, rows)


def _kinds(types: pl.Series) -> pl.Expr:
    """A type column's cells as "mobile", "fax" or "other" (each distinct cell judged once)."""
    values = types.drop_nulls().unique().to_list()
    kinds = [phone_type(v) for v in values]
    return (
        pl.col(types.name)
        .replace_strict(values, kinds, default=pl.lit("other"), return_dtype=pl.String)
        .fill_null("other")
    )


def chosen(found: Candidates, codes: pl.DataFrame) -> pl.DataFrame:
    """Per row (``_at``): ``_raw_phone``, ``_phone_key`` ("" without one), ``_phone_from``, the
    warning (``_pick_warn``) and the message when the row has no phone (``_pick_none``), from
    ``codes`` (``_phone_key`` -> ``_phone_code``, every cell's parse)."""
    tried = found.cells.join(codes, on="_phone_key", how="left", maintain_order="left")
    tried = tried.with_columns((pl.col("_phone_code") == SEVERAL).fill_null(False).alias("_sev"))
    first = tried.unique("_at", keep="first", maintain_order=True).select(
        "_at", pl.col("_from").alias("_first_from")
    )
    best = (
        tried.sort("_at", "_sev", maintain_order=True)
        .unique("_at", keep="first", maintain_order=True)
        .select("_at", "_phone_key", "_from")
    )
    names = pl.Series([repr(c) for c in found.columns], dtype=pl.String)
    index = list(range(len(found.columns)))

    def name(of: str) -> pl.Expr:
        return pl.col(of).replace_strict(index, names, return_dtype=pl.String)

    passed = pl.when(pl.col("_from") != pl.col("_first_from")).then(
        pl.lit("column ") + name("_first_from")
        + pl.lit(" holds several numbers: the phone is from ") + name("_from")
    )  # fmt: skip
    empty = pl.when(pl.col("_first_empty") & (pl.col("_from") != 0)).then(
        pl.lit(f"column {found.columns[0]!r} is empty: the phone is from ") + name("_from")
    )
    several = len(found.columns) > 1
    none = pl.lit(
        f"columns {', '.join(map(repr, found.columns))} are all empty"
        if several else f"column {found.columns[0]!r} is empty"
    )  # fmt: skip
    fax = pl.lit("column ") + pl.col("_fax") + pl.lit(
        " holds a fax number, never a WhatsApp number"
        + ("; the other phone columns are empty" if several else "")
    )
    warn = pl.concat_str(empty, passed, separator="; ", ignore_nulls=True)
    return (
        found.rows.join(best, on="_at", how="left", maintain_order="left")
        .join(first, on="_at", how="left", maintain_order="left")
        .select(
            "_at",
            pl.col("_phone_key").alias("_raw_phone"),
            pl.col("_phone_key").fill_null(""),
            pl.col("_from").fill_null(0).alias("_phone_from"),
            pl.when(warn.str.len_chars() > 0).then(warn).alias("_pick_warn"),
            pl.when(pl.col("_fax").is_not_null()).then(fax).otherwise(none).alias("_pick_none"),
        )
    )
