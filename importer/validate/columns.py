"""Whole-column steps ahead of the per-value parsers, in polars: what each phone cell is
parsed as (``phone_key``), the plain email addresses settled without a parser
(``fast_email``), and cells that hold a spreadsheet's formula error (``formula_error``).
Kept apart from ``phones`` and ``emails``, which the worker processes import and which
therefore import no polars.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from email_validator import SPECIAL_USE_DOMAIN_NAMES

from importer.read.records import FORMULA_ERRORS
from importer.validate.phones import MAX_LEN

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


def phone_key(raw: pl.Expr) -> pl.Expr:
    """The value a phone cell is parsed as: separators dropped when that cannot change it.

    A cell of ASCII digits, ``+`` and separators ``space ( ) . - nbsp`` with at least three
    digits and ``+`` only in front parses exactly as its digits: phonenumbers drops those
    separators itself, all of them are phone punctuation to it, and no extension pattern can
    match without a letter, ``#``, ``~``, ``,`` or ``;``. ``0812-3456-7890`` and
    ``(0812) 3456 7890`` are then parsed once. Any other cell is its own key, and so are a
    float's ``6281234567890.0`` (its ``.0`` is not a digit) and a ``/`` (two numbers?).
    """
    compact = raw.str.replace_all(r"[ ().\-\x{a0}]", "")
    same = (
        raw.str.contains(r"^[0-9 ().\-\x{a0}+]*$")
        & compact.str.contains(r"^\+?[0-9]{3,}$")
        & ~raw.str.contains(r"\.0+\s*$")
        & (raw.str.strip_chars().str.len_chars() <= MAX_LEN)
    )
    return pl.when(same).then(compact).otherwise(raw)


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
