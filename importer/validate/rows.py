"""Validate and normalise the read batches into ``ValidatedBatch`` frames (``VALIDATED_SCHEMA``).

Phones and emails are parsed once per UNIQUE cell value (``uniques``: cached across batches,
bounded, by worker processes when a batch brings many) and joined back, after the
whole-column steps of ``cells`` (phone keys; plain emails settled in polars); names and
metadata are polars expressions. A row is ``invalid`` when a cell it uses holds a formula
error (``formula_error``: that reason wins), when its phone is (the phone's reason wins next),
or its email is and ``invalid_email == "fail"``; with ``"drop"`` the email becomes null and
``warning`` says why.

In-file duplicates are decided among otherwise valid rows by E.164 phone, across batches:
- ``keep="first"`` streams: the phones kept so far live in a polars frame (about 30 MB per
  million distinct numbers).
- ``keep="last"`` needs to know the last occurrence before the first batch is yielded. When
  ``batches`` can be iterated again (``SourceReader.batches()`` can: it re-reads the file) a
  first pass plans every batch and keeps only (phone, row_number) of the valid rows; phones are
  cached, so the second pass re-parses only past the cache bound. When ``batches`` is a one-shot
  iterator, the validated batches are held in memory until the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import polars as pl

from importer.options import InputOptions
from importer.records import LABEL_SEPARATOR, VALIDATED_SCHEMA, ValidatedBatch, phone_key
from importer.validate.accounts import Routing, cell_expr
from importer.validate.columns import fast_email, formula_error
from importer.validate.duplicates import ACCOUNT_AND_PHONE, PHONE, Dedup, last_rows
from importer.validate.pick import Candidates, candidates, chosen
from importer.validate.records import ColumnMapping
from importer.validate.uniques import EmailRow, Pending, PhoneRow, UniqueParser

_NO_EMAILS = pl.DataFrame(schema={"_email_key": pl.String, "_email_norm": pl.String})
_SCHEMA = pl.Schema({name: dtype() for name, dtype in VALIDATED_SCHEMA.items()})
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\"} | {
    chr(i): json.dumps(chr(i)).strip('"') for i in range(0x20)
}


def _quote(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _non_empty(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.str.len_chars() > 0).then(expr)


def clean_text(expr: pl.Expr) -> pl.Expr:
    """Trim, turn control characters into spaces, collapse inner whitespace; empty -> null."""
    # each run of 2+ whitespace/control characters, or a lone one that is not a plain space,
    # becomes one space: what replacing every run would give, without rewriting single spaces
    spaced = expr.str.replace_all(r"[\s\p{Cc}]{2,}|[[\s\p{Cc}]&&[^ ]]", " ")
    return _non_empty(spaced.str.strip_chars())


def label_names(cell: pl.Expr) -> pl.Expr:
    """A labels cell (``VIP; Jakarta, 2024``) as its names: split on ``;``, ``,`` or Google
    Contacts' `` ::: ``, trimmed, empty ones and Google's own groups (``* myContacts``,
    ``* starred``) dropped, each once in first-seen order, joined by ``LABEL_SEPARATOR``."""
    names = (
        cell.str.replace_all(r",|:::", ";").str.split(";")
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(
            (pl.element().str.len_chars() > 0) & ~pl.element().str.starts_with("* ")
        ))
        .list.unique(maintain_order=True)
        .list.join(LABEL_SEPARATOR)
    )  # fmt: skip
    return _non_empty(names)


def full_name(columns: tuple[str, ...]) -> pl.Expr:
    """The cleaned name cells joined by one space (cleaned parts need no second cleaning)."""
    if not columns:
        return pl.lit(None, dtype=pl.String)
    parts = [clean_text(pl.col(c)) for c in columns]
    return _non_empty(pl.concat_str(parts, separator=" ", ignore_nulls=True))


# What json.dumps escapes, as one replace_many (one pass over the text, not 34): the
# backslash and the quote, then (unless the batch has none) every control character.
_ESCAPED_PLAIN = (["\\", '"'], ["\\\\", '\\"'])
_ESCAPED = (
    [*_ESCAPED_PLAIN[0], *map(chr, range(0x20))],
    [*_ESCAPED_PLAIN[1], *(_JSON_ESCAPES[chr(c)] for c in range(0x20))],
)


def json_string(expr: pl.Expr, *, controls: bool = True) -> pl.Expr:
    """``json.dumps(value, ensure_ascii=False)`` as an expression; ``controls=False`` when
    the values are known to hold no control characters (32 fewer patterns)."""
    sources, targets = _ESCAPED if controls else _ESCAPED_PLAIN
    return pl.lit('"') + expr.str.replace_many(sources, targets) + pl.lit('"')


def has_controls(frame: pl.DataFrame, columns: tuple[str, ...]) -> bool:
    """Whether any cell of ``columns`` holds a control character (U+0000-U+001F)."""
    if not columns:
        return False
    found = frame.select(
        pl.any_horizontal(pl.col(c).str.contains(r"[\x00-\x1f]").any() for c in columns)
    )
    return bool(found.item())


def metadata_expr(columns: tuple[str, ...], *, controls: bool = True) -> pl.Expr:
    """A JSON object (sorted keys, compact) of the non-empty trimmed cells; null when none."""
    if not columns:
        return pl.lit(None, dtype=pl.String)
    parts = []
    for name in sorted(columns):
        value = pl.col(name).str.strip_chars()
        key = json.dumps(name, ensure_ascii=False) + ":"
        quoted = json_string(value, controls=controls)
        parts.append(pl.when(value.str.len_chars() > 0).then(pl.lit(key) + quoted))
    body = pl.concat_str(parts, separator=",", ignore_nulls=True)
    return pl.when(body.str.len_chars() > 0).then(pl.lit("{") + body + pl.lit("}"))


class _Started(NamedTuple):
    batch: pl.DataFrame
    frame: pl.DataFrame  # the working frame: internal column names only
    phones: pl.DataFrame  # unique raw phone cells and the key each is parsed by
    choice: Candidates | None  # several phone columns: every cell a row's phone may be
    emails: list[str]  # unique non-blank raw email cells left to the parser
    fast_emails: pl.DataFrame  # unique raw email cells normalised here (fast_email)
    pending: Pending


class _Validator:
    def __init__(
        self,
        mapping: ColumnMapping,
        options: InputOptions,
        parser: UniqueParser,
        routing: Routing | None = None,
    ) -> None:
        self.mapping = mapping
        self.options = options
        self.parser = parser
        self.routing = routing

    def start(self, batch: pl.DataFrame) -> _Started:
        """Shape the batch and hand its unique phones and emails to the parser."""
        m = self.mapping
        choice = candidates(batch, m)  # several phone columns: which cell is chosen is left
        if choice is None:  # to ``finish``, when the cells are parsed
            phone: list[pl.Expr] = [
                pl.col(m.phone).alias("_raw_phone"),
                pl.col(m.phone).fill_null("").alias("_phone_key"),
                pl.lit(0).alias("_phone_from"),
            ]
        else:
            phone = [pl.int_range(pl.len(), dtype=pl.Int64).alias("_at")]
        # Only internal names in the working frame: input headers can be anything.
        frame = batch.select(
            pl.col("row_number"),
            *phone,
            (pl.col(m.email) if m.email else pl.lit(None, dtype=pl.String)).alias("_email_key"),
            full_name(m.name).alias("_name"),
            metadata_expr(m.metadata, controls=has_controls(batch, m.metadata)).alias("_metadata"),
            label_names(pl.col(m.labels) if m.labels else pl.lit(None, pl.String)).alias("_labels"),
            formula_error(_used(m)).alias("_formula"),
            *([cell_expr(m.account)] if m.account else []),
        )
        cells = frame if choice is None else pl.concat(
            [choice.cells.select("_phone_key"), pl.DataFrame({"_phone_key": [""]})]
        )  # fmt: skip
        phones = cells.select(pl.col("_phone_key").unique(maintain_order=True)).with_columns(
            phone_key(pl.col("_phone_key")).alias("_pkey")
        )
        keys = phones["_pkey"].unique(maintain_order=True).to_list()
        emails: list[str] = []
        fast = _NO_EMAILS
        if m.email:  # plain addresses are settled here, in polars; the rest go to the parser
            uniq = frame.select(pl.col("_email_key").drop_nulls().unique(maintain_order=True))
            uniq = uniq.with_columns(fast_email(uniq["_email_key"]).alias("_email_norm"))
            fast = uniq.filter(pl.col("_email_norm").is_not_null())
            rest = uniq.filter(pl.col("_email_norm").is_null())["_email_key"].to_list()
            emails = [v for v in rest if v.strip()]
        pending = self.parser.submit(phones=keys, emails=emails)
        return _Started(batch, frame, phones, choice, emails, fast, pending)

    def _phone_frame(
        self, phones: pl.DataFrame, keys: list[str], rows: list[PhoneRow]
    ) -> pl.DataFrame:
        names = ("_e164", "_phone_code", "_problem", "_region", "_rsource", "_ntype", "_pwarn")
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
        parsed = pl.DataFrame(
            {"_pkey": keys, **dict(zip(names, map(list, columns), strict=True))},
            schema=dict.fromkeys(("_pkey", *names), pl.String),
        )
        out = phones.join(parsed, on="_pkey", how="left", maintain_order="left")
        bad = out.select(
            pl.int_range(pl.len()).alias("_at"), "_phone_key", "_phone_code", "_problem"
        ).filter(pl.col("_phone_code").is_not_null())  # worded in Python: only the few bad
        msgs: list[str | None] = [None] * out.height
        for at, raw, code, problem in bad.iter_rows():
            msgs[at] = None if code == "missing_phone" else f"{_quote(raw.strip())} {problem}"
        msg = pl.Series("_phone_msg", msgs, dtype=pl.String)
        return out.drop("_pkey", "_problem").insert_column(3, msg)

    def _email_frame(self, raws: list[str], rows: list[EmailRow]) -> pl.DataFrame:
        col = self.mapping.email
        return pl.DataFrame(
            {
                "_email_key": raws,
                "_email_norm": [r[0] for r in rows],
                "_email_msg": [
                    None
                    if r[1] is None
                    else f"column {col!r}: {_quote(raw.strip())} is not a "
                    f"valid email address: {r[1]}"
                    for raw, r in zip(raws, rows, strict=True)
                ],
            },
            schema={"_email_key": pl.String, "_email_norm": pl.String, "_email_msg": pl.String},
        )

    def finish(self, started: _Started) -> ValidatedBatch:
        """Join the parsed values back and decide every row; ``duplicate_in_file`` is left."""
        m, opts = self.mapping, self.options
        phone_rows, email_rows = self.parser.collect(started.pending)
        keys = started.pending.phones
        phones = self._phone_frame(started.phones, keys, phone_rows)
        frame = started.frame
        if started.choice is not None:
            picked = chosen(started.choice, phones.select("_phone_key", "_phone_code"))
            frame = frame.join(picked, on="_at", how="left", maintain_order="left")
        else:
            frame = frame.with_columns(
                pl.lit(None, pl.String).alias("_pick_warn"),
                pl.lit(f"column {m.phone!r} is empty").alias("_pick_none"),
            )
        frame = frame.join(phones, on="_phone_key", how="left", maintain_order="left")
        if m.email:
            emails = pl.concat(
                [
                    started.fast_emails.with_columns(pl.lit(None, pl.String).alias("_email_msg")),
                    self._email_frame(started.emails, email_rows),
                ]
            )
            frame = frame.join(emails, on="_email_key", how="left", maintain_order="left")
        else:
            frame = frame.with_columns(
                pl.lit(None, dtype=pl.String).alias("_email_norm"),
                pl.lit(None, dtype=pl.String).alias("_email_msg"),
            )
        frame, account_bad = self._accounts(frame)
        column = pl.lit(f"column {m.phone!r}")  # where the row's phone came from
        for i, c in enumerate(m.phone_fallbacks, start=1):
            label = pl.lit(f"column {c!r}")
            column = pl.when(pl.col("_phone_from") == i).then(label).otherwise(column)
        phone_msg = (
            pl.when(pl.col("_phone_code") == "missing_phone").then(pl.col("_pick_none"))
            .otherwise(column + pl.lit(": ") + pl.col("_phone_msg"))
        )  # fmt: skip
        read_as = pl.when(pl.col("_pwarn").is_not_null()).then(
            column + pl.lit(": ") + pl.col("_pwarn")
        )
        bad_email = pl.col("_email_msg").is_not_null()
        fail_email = bad_email & pl.lit(opts.invalid_email == "fail")
        phone_bad = pl.col("_phone_code").is_not_null()
        formula = pl.col("_formula").is_not_null()  # names what the other checks would not
        checked = frame.select(
            pl.col("row_number"),
            pl.when(formula | phone_bad | account_bad | fail_email).then(pl.lit("invalid"))
            .otherwise(pl.lit("valid")).alias("status"),
            pl.col("_e164").alias("phone_number"),
            pl.col("_name").alias("name"),
            pl.when(bad_email).then(None).otherwise(pl.col("_email_norm")).alias("email"),
            pl.col("_metadata").alias("metadata"),
            pl.when(formula).then(pl.lit("formula_error"))
            .when(phone_bad).then(pl.col("_phone_code"))
            .when(account_bad).then(pl.col("_acode"))
            .when(fail_email).then(pl.lit("invalid_email")).alias("error_code"),
            pl.when(formula).then(pl.col("_formula"))
            .when(phone_bad).then(phone_msg)
            .when(account_bad).then(pl.col("_amsg"))
            .when(fail_email).then(pl.col("_email_msg")).alias("error_message"),
            _non_empty(pl.concat_str(
                pl.col("_pick_warn"), read_as,
                pl.when(bad_email & ~fail_email)
                .then(pl.col("_email_msg") + pl.lit("; email left empty (--invalid-email drop)")),
                separator="; ", ignore_nulls=True,
            )).alias("warning"),
            pl.lit(None, dtype=pl.Int64).alias("duplicate_of"),
            pl.col("_raw_phone").alias("raw_phone"),
            pl.col("_region").alias("phone_region"),
            pl.col("_rsource").alias("region_source"),
            pl.col("_ntype").alias("number_type"),
            pl.col("_labels").alias("labels"),
            pl.col("_account").alias("account"),
        ).cast(_SCHEMA)  # fmt: skip
        return ValidatedBatch(rows=checked, original=started.batch.drop("row_number"))

    def _accounts(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.Expr]:
        """The account each row goes to (``_account``), and whether it cannot go (``_acode``,
        ``_amsg``): only in a file with an account column; else null, and never a reason."""
        m, routing = self.mapping, self.routing
        if m.account is None:
            nulls = (pl.lit(None, pl.String).alias(c) for c in ("_account", "_acode", "_amsg"))
            return frame.with_columns(nulls), pl.lit(False)
        if routing is None:  # (validation without a router: nothing checked, no default)
            routing = Routing(column=m.account, default=None, region=self.options.default_region)
        routed = routing.frame(frame["_account_cell"])
        frame = frame.join(
            routed, on="_account_cell", how="left", maintain_order="left", nulls_equal=True
        )
        return frame, pl.col("_acode").is_not_null()


def _used(m: ColumnMapping) -> tuple[str, ...]:
    """Every input column the rows are built from."""
    optional = tuple(c for c in (m.email, m.labels, m.account) if c)
    return (m.phone, *m.phone_fallbacks, *m.name, *optional, *m.metadata)


def validate_batches(
    *,
    batches: Iterable[pl.DataFrame],
    mapping: ColumnMapping,
    options: InputOptions,
    routing: Routing | None = None,
) -> Iterator[ValidatedBatch]:
    """Validate, normalise and de-duplicate every batch, in order. ``routing``: where a file
    with an account column sends each row (``validate.accounts``); in-file duplicates are
    then told apart per account.

    Big batches are parsed by worker processes (``uniques``) that live as long as this
    generator: closing it, or running it to the end, stops them.
    """
    with UniqueParser(
        default_region=options.default_region, require_mobile=options.require_mobile,
        bare_numbers=options.bare_numbers, threshold=options.pool_threshold,
        workers=options.workers,
    ) as parser:  # fmt: skip
        validator = _Validator(mapping, options, parser, routing)
        by = ACCOUNT_AND_PHONE if mapping.account else PHONE
        if options.keep == "first":
            dedup = Dedup("first", by=by)
            for pb in _validated(validator, batches):
                yield dedup.apply(pb)
            return
        if iter(batches) is not batches:  # re-iterable: a cheap first pass, bounded memory
            kept = last_rows((pb.rows for pb in _validated(validator, batches)), by=by)
            dedup = Dedup("last", kept, by=by)
            for pb in _validated(validator, batches):
                yield dedup.apply(pb)
            return
        held = list(_validated(validator, batches))
        dedup = Dedup("last", last_rows((pb.rows for pb in held), by=by), by=by)
        for pb in held:
            yield dedup.apply(pb)


def _validated(validator: _Validator, batches: Iterable[pl.DataFrame]) -> Iterator[ValidatedBatch]:
    """``validator`` over ``batches``, one batch ahead: read and start batch k+1, then finish k.

    While the workers parse batch k+1's values, this process finishes batch k and the caller
    writes it out.
    """
    ahead: _Started | None = None
    for batch in batches:
        started = validator.start(batch)
        if ahead is not None:
            yield validator.finish(ahead)
        ahead = started
    if ahead is not None:
        yield validator.finish(ahead)
