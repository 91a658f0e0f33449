"""In-file duplicates: among otherwise valid rows, by E.164 phone, across batches; in a file
with an account column, by account and phone (one phone under two accounts is two contacts).

``keep="first"`` streams (the phones kept so far live in a polars frame); ``keep="last"`` is
given the last row of every phone up front (``last_rows``, from a first pass).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from importer.records import VALIDATED_SCHEMA, ValidatedBatch

_SCHEMA = pl.Schema({name: dtype() for name, dtype in VALIDATED_SCHEMA.items()})
PHONE = ("phone_number",)
ACCOUNT_AND_PHONE = ("account", "phone_number")


def _key(by: tuple[str, ...]) -> pl.Expr:
    """What makes two valid rows one contact: the phone, or the account and the phone (an
    empty cell with no default account is an account of its own)."""
    if by == PHONE:
        return pl.col("phone_number").alias("_key")
    parts = [pl.col(c).fill_null("") for c in by]
    return pl.concat_str(parts, separator=" ").alias("_key")


class Dedup:
    """Duplicate phones among valid rows, across batches."""

    def __init__(
        self, keep: str, kept: pl.DataFrame | None = None, *, by: tuple[str, ...] = PHONE
    ) -> None:
        self.keep = keep
        self.kept = kept  # keep="last": _key -> the row kept, known up front
        self.seen: list[pl.DataFrame] = []  # keep="first": keys kept so far
        self.by = by

    def apply(self, batch: ValidatedBatch) -> ValidatedBatch:
        numbered = batch.rows.with_row_index("_pos")
        valid = numbered.filter(pl.col("status") == "valid").select(
            "_pos", "row_number", _key(self.by)
        )
        if valid.is_empty():
            return batch
        if self.kept is not None:
            hit = valid.join(self.kept, on="_key", how="inner")
        else:
            earlier = (
                # a linear scan of what was kept, against a hash set of this batch: cheaper
                # than hashing everything kept so far for a join, batch after batch
                pl.concat(self.seen).filter(pl.col("_key").is_in(valid["_key"].implode()))
                if self.seen
                else pl.DataFrame(schema={"_key": pl.String, "_kept": pl.Int64})
            )
            hit = valid.join(earlier, on="_key", how="left").with_columns(
                pl.coalesce("_kept", pl.col("row_number").min().over("_key"))
            )
            fresh = hit.filter(pl.col("_kept") == pl.col("row_number"))
            self.seen.append(fresh.select("_key", "_kept"))
        dups = hit.filter(pl.col("_kept") != pl.col("row_number")).select("_pos", "_kept")
        if dups.is_empty():
            return batch
        which = "first" if self.keep == "first" else "last"
        kept = "; row {} is kept (--keep " + which + ")"
        message = (
            pl.format("same phone number {} as row {}" + kept, "phone_number", "_kept", "_kept")
            if self.by == PHONE
            else pl.format(
                "same phone number {} for account {} as row {}" + kept,
                "phone_number", pl.col("account").fill_null("(none)"), "_kept", "_kept",
            )
        )  # fmt: skip
        joined = numbered.join(dups, on="_pos", how="left", maintain_order="left")
        is_dup = pl.col("_kept").is_not_null()
        out = joined.with_columns(
            pl.when(is_dup).then(pl.lit("duplicate_in_file")).otherwise("status").alias("status"),
            pl.when(is_dup).then(pl.lit("duplicate_in_file")).otherwise("error_code")
            .alias("error_code"),
            pl.when(is_dup).then(message).otherwise("error_message").alias("error_message"),
            pl.when(is_dup).then(pl.col("_kept")).otherwise("duplicate_of").alias("duplicate_of"),
        ).select(list(VALIDATED_SCHEMA))  # fmt: skip
        return ValidatedBatch(rows=out.cast(_SCHEMA), original=batch.original)


def last_rows(validated: Iterable[pl.DataFrame], *, by: tuple[str, ...] = PHONE) -> pl.DataFrame:
    frames = [
        v.filter(pl.col("status") == "valid").select(_key(by), "row_number") for v in validated
    ]
    if not frames:
        return pl.DataFrame(schema={"_key": pl.String, "_kept": pl.Int64})
    return pl.concat(frames).group_by("_key").agg(pl.col("row_number").max().alias("_kept"))
