"""Whole-column steps ahead of the per-value parsers, in polars: what each phone cell is
parsed as (``importer.records.phone_key``, shared with the journal's cells), the plain email
addresses settled without a parser (``fast_email``), and cells that hold a spreadsheet's
formula error (``formula_error``).
Kept apart from ``phones`` and ``emails``, which the worker processes import and which
therefore import no polars.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES

from importer.read.records import FORMULA_ERRORS

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
FAST_SHAPE = rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[A-Za-z]{{2,63}})"  # (local)@(domain)
SPECIAL_DOMAINS = tuple(SPECIAL_USE_DOMAIN_NAMES)  # left to email-validator, like "--"


def fast_email(raw: pl.Series) -> pl.Series:
    """The plain addresses of a column settled without email-validator (~20-40 us each):
    where the cell is plain ASCII ``local@domain`` within the length limits, what
    email-validator answers for it (the domain lowercased, the rest as is); else null, and
    ``emails.check_email`` decides. The tests hold the two equal. Built in steps, so each
    part is computed once."""
    special = "|".join(d.replace(".", r"\.") for d in SPECIAL_DOMAINS)
    text = pl.col("text")
    local, domain = pl.col("field_0"), pl.col("field_1")
    steps = (
        pl.DataFrame({"text": raw.str.strip_chars()})
        .with_columns(
            text.str.contains(f"^{FAST_SHAPE}$").alias("shape"),
            text.str.split_exact("@", 1).alias("parts"),  # the shape has one "@"
        )
        .unnest("parts")
        .with_columns(domain.str.to_lowercase())
    )
    plain = (
        pl.col("shape")
        & (text.str.len_chars() <= 254)
        & (local.str.len_chars() <= 64)
        & (domain.str.len_chars() <= 253)
        & ~domain.str.contains("--", literal=True)
        & ~domain.str.contains(f"(?:^|\\.)(?:{special})$")
    )
    fast = pl.when(plain).then(pl.concat_str(local, pl.lit("@"), domain))
    return steps.select(fast.alias(raw.name)).to_series()


def formula_error(columns: Sequence[str]) -> pl.Expr:
    """The message for the first of ``columns`` whose cell is a formula error (``#N/A``,
    ``#DIV/0!``, ...: what the spreadsheet shows, or wrote to a CSV); else null."""
    found = []
    for name in columns:
        value = pl.col(name).str.strip_chars()
        found.append(
            pl.when(value.is_in(FORMULA_ERRORS)).then(
                pl.lit(f"column {name!r} holds ")
                + value
                + pl.lit(", a formula error: the spreadsheet could not compute this cell; fix "
                         "the formula or the cells it reads")
            )
        )  # fmt: skip
    return pl.coalesce(found) if found else pl.lit(None, dtype=pl.String)
