"""Validate and normalise the read batches into ``PlannedBatch`` frames (``PLANNED_SCHEMA``).

Phones and emails are parsed once per UNIQUE cell value (cached across batches, bounded) and
joined back; names and metadata are polars expressions. A row is ``invalid`` when its phone is
(the phone's reason wins), or its email is and ``invalid_email == "fail"``; with ``"drop"`` the
email becomes null and ``warning`` says why.

In-file duplicates are decided among otherwise valid rows by E.164 phone, across batches:
- ``keep="first"`` streams: the phones kept so far live in a polars frame (about 30 MB per
  million distinct numbers).
- ``keep="last"`` needs to know the last occurrence before the first batch is yielded. When
  ``batches`` can be iterated again (``SourceReader.batches()`` can: it re-reads the file) a
  first pass plans every batch and keeps only (phone, row_number) of the valid rows; phones are
  cached, so the second pass re-parses only past the cache bound. When ``batches`` is a one-shot
  iterator, the planned batches are held in memory until the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import polars as pl

from importer.emails import check_email
from importer.phones import PhoneResult, parse_phone
from importer.records import PLANNED_SCHEMA, ColumnMapping, InputOptions, PlannedBatch

_CACHE_LIMIT = 500_000
_SCHEMA = pl.Schema({name: dtype() for name, dtype in PLANNED_SCHEMA.items()})
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\"} | {
    chr(i): json.dumps(chr(i)).strip('"') for i in range(0x20)
}


def _quote(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Trim, drop control characters, collapse inner whitespace; empty -> null."""
    out = expr.str.replace_all(r"\p{Cc}", " ").str.replace_all(r"\s+", " ").str.strip_chars()
    return pl.when(out.str.len_chars() > 0).then(out)


def json_string(expr: pl.Expr) -> pl.Expr:
    """``json.dumps(value, ensure_ascii=False)`` as an expression."""
    out = expr.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
    for ch in map(chr, range(0x20)):
        out = out.str.replace_all(ch, _JSON_ESCAPES[ch], literal=True)
    return pl.lit('"') + out + pl.lit('"')


def metadata_expr(columns: tuple[str, ...]) -> pl.Expr:
    """A JSON object (sorted keys, compact) of the non-empty trimmed cells; null when none."""
    if not columns:
        return pl.lit(None, dtype=pl.String)
    parts = []
    for name in sorted(columns):
        value = pl.col(name).str.strip_chars()
        key = json.dumps(name, ensure_ascii=False) + ":"
        parts.append(pl.when(value.str.len_chars() > 0).then(pl.lit(key) + json_string(value)))
    body = pl.concat_str(parts, separator=",", ignore_nulls=True)
    return pl.when(body.str.len_chars() > 0).then(pl.lit("{") + body + pl.lit("}"))


class _Planner:
    def __init__(self, mapping: ColumnMapping, options: InputOptions) -> None:
        self.mapping = mapping
        self.options = options
        self.phones: dict[str, PhoneResult] = {}
        self.emails: dict[str, tuple[str | None, str | None]] = {}

    def _phone(self, raw: str) -> PhoneResult:
        hit = self.phones.get(raw)
        if hit is None:
            if len(self.phones) >= _CACHE_LIMIT:
                self.phones.clear()
            hit = self.phones[raw] = parse_phone(
                raw,
                default_region=self.options.default_region,
                require_mobile=self.options.require_mobile,
            )
        return hit

    def _email(self, raw: str) -> tuple[str | None, str | None]:
        hit = self.emails.get(raw)
        if hit is None:
            if len(self.emails) >= _CACHE_LIMIT:
                self.emails.clear()
            hit = check_email(raw)
            self.emails[raw] = hit
        return hit

    def _phone_frame(self, values: pl.Series) -> pl.DataFrame:
        col = self.mapping.phone
        raws = values.unique().to_list()
        results = [self._phone(raw) for raw in raws]
        msgs = [
            None
            if r.code is None
            else f"column {col!r} is empty"
            if r.code == "missing_phone"
            else f"column {col!r}: {_quote(raw.strip())} {r.problem}"
            for raw, r in zip(raws, results, strict=True)
        ]
        return pl.DataFrame(
            {
                "_phone_key": raws,
                "_e164": [r.e164 for r in results],
                "_phone_code": [r.code for r in results],
                "_phone_msg": msgs,
                "_region": [r.region for r in results],
                "_rsource": [r.region_source for r in results],
                "_ntype": [r.number_type for r in results],
            },
            schema_overrides=dict.fromkeys(
                ("_phone_key", "_e164", "_phone_code", "_phone_msg", "_region", "_rsource",
                 "_ntype"),
                pl.String,
            ),
        )  # fmt: skip

    def _email_frame(self, values: pl.Series) -> pl.DataFrame:
        col = self.mapping.email
        raws = [v for v in values.drop_nulls().unique().to_list() if v.strip()]
        results = [self._email(raw) for raw in raws]
        return pl.DataFrame(
            {
                "_email_key": raws,
                "_email_norm": [r[0] for r in results],
                "_email_msg": [
                    None
                    if r[1] is None
                    else f"column {col!r}: {_quote(raw.strip())} is not a "
                    f"valid email address: {r[1]}"
                    for raw, r in zip(raws, results, strict=True)
                ],
            },
            schema={"_email_key": pl.String, "_email_norm": pl.String, "_email_msg": pl.String},
        )

    def plan(self, batch: pl.DataFrame) -> PlannedBatch:
        """Validate one batch; ``duplicate_in_file`` is left to the caller."""
        m, opts = self.mapping, self.options
        name = (
            clean_text(pl.concat_str([clean_text(pl.col(c)) for c in m.name], separator=" ",
                                     ignore_nulls=True))
            if m.name else pl.lit(None, dtype=pl.String)
        )  # fmt: skip
        # Only internal names in the working frame: input headers can be anything.
        frame = batch.select(
            pl.col("row_number"),
            pl.col(m.phone).alias("_raw_phone"),
            pl.col(m.phone).fill_null("").alias("_phone_key"),
            (pl.col(m.email) if m.email else pl.lit(None, dtype=pl.String)).alias("_email_key"),
            name.alias("_name"),
            metadata_expr(m.metadata).alias("_metadata"),
        )
        phones = self._phone_frame(frame["_phone_key"])
        frame = frame.join(phones, on="_phone_key", how="left", maintain_order="left")
        if m.email:
            emails = self._email_frame(frame["_email_key"])
            frame = frame.join(emails, on="_email_key", how="left", maintain_order="left")
        else:
            frame = frame.with_columns(
                pl.lit(None, dtype=pl.String).alias("_email_norm"),
                pl.lit(None, dtype=pl.String).alias("_email_msg"),
            )
        bad_email = pl.col("_email_msg").is_not_null()
        fail_email = bad_email & pl.lit(opts.invalid_email == "fail")
        phone_bad = pl.col("_phone_code").is_not_null()
        planned = frame.select(
            pl.col("row_number"),
            pl.when(phone_bad | fail_email).then(pl.lit("invalid")).otherwise(pl.lit("valid"))
            .alias("status"),
            pl.col("_e164").alias("phone_number"),
            pl.col("_name").alias("name"),
            pl.when(bad_email).then(None).otherwise(pl.col("_email_norm")).alias("email"),
            pl.col("_metadata").alias("metadata"),
            pl.when(phone_bad).then(pl.col("_phone_code"))
            .when(fail_email).then(pl.lit("invalid_email")).alias("error_code"),
            pl.when(phone_bad).then(pl.col("_phone_msg"))
            .when(fail_email).then(pl.col("_email_msg")).alias("error_message"),
            pl.when(bad_email & ~fail_email)
            .then(pl.col("_email_msg") + pl.lit("; email left empty (--invalid-email drop)"))
            .alias("warning"),
            pl.lit(None, dtype=pl.Int64).alias("duplicate_of"),
            pl.col("_raw_phone").alias("raw_phone"),
            pl.col("_region").alias("phone_region"),
            pl.col("_rsource").alias("region_source"),
            pl.col("_ntype").alias("number_type"),
        ).cast(_SCHEMA)  # fmt: skip
        return PlannedBatch(planned=planned, original=batch.drop("row_number"))


class _Dedup:
    """Duplicate phones among valid rows, across batches."""

    def __init__(self, keep: str, kept: pl.DataFrame | None = None) -> None:
        self.keep = keep
        self.kept = kept  # keep="last": phone_number -> the row kept, known up front
        self.seen: list[pl.DataFrame] = []  # keep="first": phones kept so far

    def apply(self, batch: PlannedBatch) -> PlannedBatch:
        planned = batch.planned.with_row_index("_pos")
        valid = planned.filter(pl.col("status") == "valid").select(
            "_pos", "row_number", "phone_number"
        )
        if valid.is_empty():
            return batch
        if self.kept is not None:
            hit = valid.join(self.kept, on="phone_number", how="inner")
        else:
            earlier = (
                pl.concat(self.seen)
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
        joined = planned.join(dups, on="_pos", how="left", maintain_order="left")
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
        ).select(list(PLANNED_SCHEMA))  # fmt: skip
        return PlannedBatch(planned=out.cast(_SCHEMA), original=batch.original)


def _last_rows(planned: Iterable[pl.DataFrame]) -> pl.DataFrame:
    frames = [
        p.filter(pl.col("status") == "valid").select("phone_number", "row_number") for p in planned
    ]
    if not frames:
        return pl.DataFrame(schema={"phone_number": pl.String, "_kept": pl.Int64})
    return pl.concat(frames).group_by("phone_number").agg(pl.col("row_number").max().alias("_kept"))


def plan_batches(
    *, batches: Iterable[pl.DataFrame], mapping: ColumnMapping, options: InputOptions
) -> Iterator[PlannedBatch]:
    """Validate, normalise and de-duplicate every batch, in order."""
    planner = _Planner(mapping, options)
    if options.keep == "first":
        dedup = _Dedup("first")
        for batch in batches:
            yield dedup.apply(planner.plan(batch))
        return
    if iter(batches) is not batches:  # re-iterable: a cheap first pass, bounded memory
        kept = _last_rows(planner.plan(b).planned for b in batches)
        dedup = _Dedup("last", kept)
        for batch in batches:
            yield dedup.apply(planner.plan(batch))
        return
    held = [planner.plan(b) for b in batches]
    dedup = _Dedup("last", _last_rows(pb.planned for pb in held))
    for pb in held:
        yield dedup.apply(pb)
