"""In-file duplicates: among otherwise valid rows, by E.164 phone, across batches.

``keep="first"`` streams (the phones kept so far live in a polars frame); ``keep="last"`` is
given the last row of every phone up front (``last_rows``, from a first pass).
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from importer.records import VALIDATED_SCHEMA, ValidatedBatch

_SCHEMA = pl.Schema({name: dtype() for name, dtype in VALIDATED_SCHEMA.items()})


class Dedup:
    """Duplicate phones among valid rows, across batches."""

    def __init__(self, keep: str, kept: pl.DataFrame | None = None) -> None:
        self.keep = keep
        self.kept = kept  # keep="last": phone_number -> the row kept, known up front
        self.seen: list[pl.DataFrame] = []  # keep="first": phones kept so far

    def apply(self, batch: ValidatedBatch) -> ValidatedBatch:
        numbered = batch.rows.with_row_index("_pos")
        valid = numbered.filter(pl.col("status") == "valid").select(
            "_pos", "row_number", "phone_number"
        )
        if valid.is_empty():
            return batch
        if self.kept is not None:
            hit = valid.join(self.kept, on="phone_number", how="inner")
        else:
            earlier = (
                # a linear scan of what was kept, against a hash set of this batch: cheaper
                # than hashing everything kept so far for a join, batch after batch
                pl.concat(self.seen).filter(
                    pl.col("phone_number").is_in(valid["phone_number"].implode())
                )
                if self.seen
                else pl.DataFrame(schema={"phone_number": pl.String, "_kept": pl.Int64})
            )
            hit = valid.join(earlier, on="phone_number", how="left").with_columns(
                pl.coalesce("_kept", pl.col("row_number").min().over("phone_number"))
            )
            fresh = hit.filter(pl.col("_kept") == pl.col("row_number"))
            self.seen.append(fresh.select("phone_number", "_kept"))
        dups = hit.filter(pl.col("_kept") != pl.col("row_number")).select("_pos", "_kept")
        if dups.is_empty():
            return batch
        which = "first" if self.keep == "first" else "last"
        joined = numbered.join(dups, on="_pos", how="left", maintain_order="left")
        is_dup = pl.col("_kept").is_not_null()
        out = joined.with_columns(
            pl.when(is_dup).then(pl.lit("duplicate_in_file")).otherwise("status").alias("status"),
            pl.when(is_dup).then(pl.lit("duplicate_in_file")).otherwise("error_code")
            .alias("error_code"),
            pl.when(is_dup)
            .then(
                pl.format(
                    "same phone number {} as row {}; row {} is kept (--keep " + which + ")",
                    "phone_number", "_kept", "_kept",
                )
            )
            .otherwise("error_message")
            .alias("error_message"),
            pl.when(is_dup).then(pl.col("_kept")).otherwise("duplicate_of").alias("duplicate_of"),
        ).select(list(VALIDATED_SCHEMA))  # fmt: skip
        return ValidatedBatch(rows=out.cast(_SCHEMA), original=batch.original)


def last_rows(validated: Iterable[pl.DataFrame]) -> pl.DataFrame:
    frames = [
        v.filter(pl.col("status") == "valid").select("phone_number", "row_number")
        for v in validated
    ]
    if not frames:
        return pl.DataFrame(schema={"phone_number": pl.String, "_kept": pl.Int64})
    return pl.concat(frames).group_by("phone_number").agg(pl.col("row_number").max().alias("_kept"))
