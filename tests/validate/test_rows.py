"""Phones, emails, names, metadata, statuses and in-file duplicates, on real-world formats."""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Callable
from pathlib import Path

import phonenumbers
import polars as pl
import pytest
from email_validator import validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.options import InputOptions
from importer.records import VALIDATED_SCHEMA
from importer.validate.columns import fast_email
from importer.validate.phones import parse_phone
from importer.validate.records import ColumnMapping
from importer.validate.rows import (
    clean_text,
    full_name,
    has_controls,
    metadata_expr,
    validate_batches,
)


@pytest.mark.parametrize(
    ("raw", "region", "e164", "source"),
    [
        ("0812-3456-7890", "ID", "+6281234567890", "default"),
        ("+62 812 3456 7890", None, "+6281234567890", "plus_sign"),
        ("0062 812 3456 7890", None, "+6281234567890", "idd_00"),
        ("0062 812 3456 7890", "US", "+6281234567890", "idd_00"),
        ("6281234567890", "ID", "+6281234567890", "default"),
        ("(415) 555-2671", "US", "+14155552671", "default"),
        ("+1 415.555.2671", "ID", "+14155552671", "plus_sign"),
        ("07911 123456", "GB", "+447911123456", "default"),
        ("0151 23456789", "DE", "+4915123456789", "default"),
        ("(11) 98765-4321", "BR", "+5511987654321", "default"),
        ("55 1234 5678", "MX", "+525512345678", "default"),
        ("098765 43210", "IN", "+919876543210", "default"),
        ("0803 123 4567", "NG", "+2348031234567", "default"),
        ("\u00a0+44 7911 123456 ", None, "+447911123456", "plus_sign"),
    ],
)
def test_valid_phones(raw: str, region: str | None, e164: str, source: str) -> None:
    result = parse_phone(raw, default_region=region, require_mobile=False)
    assert (result.e164, result.code, result.region_source) == (e164, None, source)
    again = parse_phone(e164, default_region=region, require_mobile=False)
    assert again.e164 == e164  # idempotent


@pytest.mark.parametrize(
    ("raw", "region", "code"),
    [
        ("", "ID", "missing_phone"),
        ("   ", "ID", "missing_phone"),
        ("n/a", "ID", "not_a_number"),
        ("call me", None, "not_a_number"),
        ("0812-CALL-ME", "ID", "not_a_number"),
        ("0812", "ID", "too_short"),
        ("+62 812", None, "too_short"),
        ("0812345678901234567", "ID", "too_long"),
        ("+1 555 555 5555", None, "invalid_for_region"),
        ("0812 3456 7890", None, "no_region"),
        ("+999 1234 5678", None, "invalid_number"),
        ("6.28123E+11", "ID", "scientific_notation"),
        ("6,28123E+11", "ID", "scientific_notation"),
        ("6.2812345678901e12", None, "scientific_notation"),
    ],
)
def test_invalid_phones(raw: str, region: str | None, code: str) -> None:
    result = parse_phone(raw, default_region=region, require_mobile=False)
    assert (result.e164, result.code) == (None, code)
    assert result.problem


def test_require_mobile_and_types() -> None:
    landline = parse_phone("021 5550 1234", default_region="ID", require_mobile=True)
    assert (landline.code, landline.number_type) == ("not_mobile", "fixed_line")
    mobile = parse_phone("0812 3456 7890", default_region="ID", require_mobile=True)
    assert (mobile.e164, mobile.number_type, mobile.region) == ("+6281234567890", "mobile", "ID")
    us = parse_phone("+1 415 555 2671", default_region=None, require_mobile=True)
    assert us.number_type == "fixed_line_or_mobile"
    assert us.code is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"[+0]?[\d \-().]{0,20}", fullmatch=True))
def test_phone_never_raises_and_is_idempotent(raw: str) -> None:
    for region in (None, "ID", "US"):
        result = parse_phone(raw, default_region=region, require_mobile=False)
        assert (result.e164 is None) == (result.code is not None)
        if result.e164:
            assert parse_phone(result.e164, default_region=region, require_mobile=False) == (
                result._replace(region_source="plus_sign", warning=None)
            )


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["ID", "US", "GB", "DE", "BR", "MX", "IN", "NG"]), st.data())
def test_valid_e164_comes_out_unchanged(region: str, data: st.DataObject) -> None:
    example = phonenumbers.example_number_for_type(
        region, data.draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE,
                                           phonenumbers.PhoneNumberType.FIXED_LINE]))
    )  # fmt: skip
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    assert parse_phone(e164, default_region=None, require_mobile=False).e164 == e164


_ADDRESS = st.from_regex(
    r"[A-Za-z0-9._%+'-]{1,12}@[A-Za-z0-9-]{1,10}(\.[A-Za-z0-9-]{1,8}){1,3}", fullmatch=True
)


_EMAIL_EDGES = [
    "a.b@Ex.COM",
    " x@y.co ",
    "\x1cx@y.co",
    "\xa0x@y.co\u2003",
    "a@x.test",
    "a@test.io",
    "a@b--c.io",
    "a@local",
    "a@foo.onion",
    "a" * 64 + "@x.io",
    "a" * 65 + "@x.io",
    "a@" + "b" * 63 + ".io",
    "a@" + ("b" * 60 + ".") * 4 + "io",
    "q~}|{@a-b.io",
    "a..b@x.io",
    ".a@x.io",
    "a@-x.io",
    "a@x-.io",
    "a@x.i",
    "a@x.123",
    "José@x.io",
    "a@bücher.de",
    "a@x.io\n",
]


@settings(max_examples=150, deadline=None)
@given(st.lists(_ADDRESS | st.text(max_size=30), max_size=40))
def test_the_polars_email_fast_path_gives_what_email_validator_gives(raws: list[str]) -> None:
    values = [*_EMAIL_EDGES, *raws]
    fast = fast_email(pl.Series("e", values, dtype=pl.String)).to_list()
    for raw, got in zip(values, fast, strict=True):
        if got is not None:  # where it answers, it answers as email-validator does
            normalised = validate_email(raw.strip(), check_deliverability=False).normalized
            assert got == normalised, raw
    assert sum(v is not None for v in fast[: len(_EMAIL_EDGES)]) >= 8  # and it does answer


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["b", "a", "Kota", "é x", '"q"']),
        # Python's strip() also trims \x1c-\x1f; polars trims Unicode White_Space only.
        st.text(
            st.characters(exclude_characters="\x1c\x1d\x1e\x1f", exclude_categories=("Cs",)),
            max_size=8,
        ),
    )
)
def test_metadata_matches_json_dumps(cells: dict[str, str]) -> None:
    columns = ("b", "a", "Kota", "é x", '"q"')
    schema = dict.fromkeys(columns, pl.String)
    frame = pl.DataFrame({c: [cells.get(c)] for c in columns}, schema=schema)
    got = frame.select(metadata_expr(columns, controls=has_controls(frame, columns))).item()
    assert got == frame.select(metadata_expr(columns)).item()
    kept = {k: v.strip() for k, v in cells.items() if v.strip()}
    expected = json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert got == (expected if kept else None)


def _plan(rows: list[tuple[str | None, ...]], columns: list[str], colmap: ColumnMapping,
          each_batch: Callable[[], None] = lambda: None, **kw: object) -> pl.DataFrame:  # fmt: skip
    opts = InputOptions(path=Path("x.csv"), **kw)  # type: ignore[arg-type]
    frame = pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row")
    frame = frame.with_row_index("row_number", offset=1).cast({"row_number": pl.Int64})
    size = opts.batch_size
    batches = [frame.slice(i, size) for i in range(0, frame.height, size)]
    planned = []
    for pb in validate_batches(batches=iter(batches), mapping=colmap, options=opts):
        each_batch()
        planned.append(pb)
    for pb in planned:
        assert pb.rows.schema == pl.Schema(VALIDATED_SCHEMA)
        assert pb.original.columns == columns
        assert pb.rows.height == pb.original.height
    return pl.concat(pb.rows for pb in planned)


COLMAP = ColumnMapping(phone="No HP", name=("Depan", "Belakang"), email="Surel", metadata=("Kota",))
COLS = ["No HP", "Depan", "Belakang", "Surel", "Kota"]


def test_row_fields_and_messages() -> None:
    rows = [
        ("0812-3456-7890", "  Budi\t", "San\x07toso ", "Budi@Example.COM", " Jakarta "),
        ("0812", None, None, None, None),
        ("+62 813 1111 2222", "Ana", "", "ana@@x", ""),
    ]
    out = _plan(rows, COLS, COLMAP, default_region="ID")
    first = out.row(0, named=True)
    assert first["status"] == "valid"
    assert first["phone_number"] == "+6281234567890"
    assert first["name"] == "Budi San toso"
    assert first["email"] == "Budi@example.com"
    assert first["metadata"] == '{"Kota":"Jakarta"}'
    assert (first["raw_phone"], first["phone_region"], first["region_source"]) == (
        "0812-3456-7890", "ID", "default"
    )  # fmt: skip
    second = out.row(1, named=True)
    assert second["status"] == "invalid"
    assert second["error_code"] == "too_short"
    assert second["error_message"] == "column 'No HP': '0812' is too short for ID (+62)"
    assert (second["name"], second["metadata"]) == (None, None)
    third = out.row(2, named=True)
    assert (third["status"], third["error_code"]) == ("invalid", "invalid_email")
    assert third["error_message"].startswith("column 'Surel': 'ana@@x' is not a valid email")


def test_invalid_email_drop_keeps_row_with_warning() -> None:
    out = _plan([("+6281234567890", "A", None, "nope", None)], COLS, COLMAP, invalid_email="drop")
    row = out.row(0, named=True)
    assert (row["status"], row["email"], row["error_code"]) == ("valid", None, None)
    assert "column 'Surel': 'nope'" in row["warning"]


def test_header_named_like_output_columns() -> None:
    colmap = ColumnMapping(phone="phone_number", email="email", metadata=("status",))
    rows = [("6281234567890", "A@B.COM", "x")]
    out = _plan(rows, ["phone_number", "email", "status"], colmap, default_region="ID")
    assert out.select("phone_number", "email", "status", "metadata").row(0) == (
        "+6281234567890", "A@b.com", "valid", '{"status":"x"}'
    )  # fmt: skip


PHONES = ["0812-3456-7890", "+62 812 3456 7890", "0813 1111 2222", "0062 812 34567890",
          "bad", "+6281234567890"]  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 2, 50])
def test_duplicates_keep_first_across_batches(batch_size: int) -> None:
    colmap = ColumnMapping(phone="p")
    out = _plan([(p,) for p in PHONES], ["p"], colmap, default_region="ID", batch_size=batch_size)
    assert out["status"].to_list() == [
        "valid", "duplicate_in_file", "valid",
        "duplicate_in_file", "invalid", "duplicate_in_file",
    ]  # fmt: skip
    assert out["duplicate_of"].to_list() == [None, 1, None, 1, None, 1]
    assert out["error_message"][1] == (
        "same phone number +6281234567890 as row 1; row 1 is kept (--keep first)"
    )


@pytest.mark.parametrize("batch_size", [1, 2, 50])
def test_duplicates_keep_last_across_batches(batch_size: int) -> None:
    colmap = ColumnMapping(phone="p")
    out = _plan([(p,) for p in PHONES], ["p"], colmap, default_region="ID", batch_size=batch_size,
                keep="last")  # fmt: skip
    assert out["status"].to_list() == ["duplicate_in_file", "duplicate_in_file", "valid",
                                       "duplicate_in_file", "invalid", "valid"]  # fmt: skip
    assert out["duplicate_of"].to_list() == [6, 6, None, 6, None, None]


def test_keep_last_with_reiterable_source(tmp_path: Path) -> None:
    from importer.read.source import open_source

    path = tmp_path / "a.csv"
    path.write_text("p\n" + "\n".join(PHONES) + "\n")
    opts = InputOptions(path=path, default_region="ID", batch_size=2, keep="last")
    reader = open_source(options=opts)
    planned = list(validate_batches(batches=reader.batches(), mapping=ColumnMapping(phone="p"),
                                options=opts))  # fmt: skip
    out = pl.concat(pb.rows for pb in planned)
    assert out["duplicate_of"].to_list() == [6, 6, None, 6, None, None]


def test_invalid_rows_do_not_claim_a_phone() -> None:
    colmap = ColumnMapping(phone="p", email="e")
    out = _plan([("+6281234567890", "x@@y"), ("+6281234567890", "ok@example.com")], ["p", "e"],
                colmap)  # fmt: skip
    assert out["status"].to_list() == ["invalid", "valid"]


# --- per-unique-value parsing: the canonical phone key, and the worker pool ----------------

_KEY_TEXT = st.text(alphabet=st.sampled_from("0123456789 ().-/\u00a0+\t#x,"), max_size=24)


@settings(max_examples=400, deadline=None)
@given(st.lists(_KEY_TEXT | st.from_regex(r"(\+|00)?[1-9][\d \-().]{2,16}", fullmatch=True),
                min_size=1, max_size=20))  # fmt: skip
def test_phone_key_parses_exactly_like_the_cell(raws: list[str]) -> None:
    from importer.records import phone_key

    keys = pl.Series(raws, dtype=pl.String).to_frame("r").select(phone_key(pl.col("r")))
    for raw, key in zip(raws, keys["r"].to_list(), strict=True):
        for region in (None, "ID", "US"):
            assert parse_phone(key, default_region=region, require_mobile=False) == parse_phone(
                raw, default_region=region, require_mobile=False
            ), (raw, key)


def _generated_values(n: int) -> tuple[list[str], list[str]]:
    import random

    rnd = random.Random(5)
    shapes = ["0812-{a}-{b}", "+62 812 {a} {b}", "0062812{a}{b}", "({a}) {b}", "+1 415 {a}",
              "+44 7911 {a}{b}", "{a}", "0812-ABC-{a}", "6.28E+{a}", "", "  ",
              "+999 {a} {b}"]  # fmt: skip
    phones = sorted({
        rnd.choice(shapes).format(a=rnd.randrange(10**5), b=rnd.randrange(10**4))
        for _ in range(n)
    })  # fmt: skip
    emails = sorted({
        rnd.choice(["budi.{a}@Example.COM", "x{a}@@y", "a b{a}@x.com", "j{a}@x",
                    "ünï{a}@bücher.de"]).format(a=rnd.randrange(10**6))
        for _ in range(n)
    })  # fmt: skip
    return phones, emails


def test_pool_gives_exactly_the_sequential_results() -> None:
    import multiprocessing

    from importer.validate.uniques import UniqueParser, parse_values

    phones, emails = _generated_values(3000)
    expected = parse_values(phones=phones, emails=emails, default_region="ID", require_mobile=True)
    with UniqueParser(default_region="ID", require_mobile=True, workers=2, threshold=0) as parser:
        first = parser.submit(phones=phones[:2000], emails=emails[:2000])
        second = parser.submit(phones=phones, emails=emails)  # overlaps, before first is done
        assert parser.collect(first) == (expected[0][:2000], expected[1][:2000])
        assert parser.collect(second) == expected
        assert parser._pool is not None  # the pool really did the work
    assert parser._pool is None
    assert not multiprocessing.active_children()  # no worker left behind


def test_plan_batches_with_pool_equals_sequential() -> None:
    import multiprocessing

    phones, emails = _generated_values(1500)
    rows = [
        (p, emails[i % len(emails)] if i % 3 == 0 else None, f"N{i}")
        for i, p in enumerate(phones * 2)
    ]
    colmap = ColumnMapping(phone="p", email="e", name=("n",))
    kw: dict[str, object] = {"default_region": "ID", "batch_size": 700}
    sequential = _plan(rows, ["p", "e", "n"], colmap, **kw, workers=0)
    seen_workers: list[int] = []
    pooled = _plan(
        rows, ["p", "e", "n"], colmap, **kw, pool_threshold=0, workers=2,
        each_batch=lambda: seen_workers.append(len(multiprocessing.active_children())),
    )  # fmt: skip
    assert seen_workers[0] == 2  # the pool really did the work, even on a one-core machine
    assert pooled.equals(sequential)
    assert set(sequential["status"]) == {"valid", "invalid", "duplicate_in_file"}
    assert not multiprocessing.active_children()


def _shapes_of(number: phonenumbers.PhoneNumber, rng: random.Random) -> list[str]:
    """Plain-digit spellings of ``number`` and near misses, as cells arrive after phone_key."""
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    national = "".join(
        ch
        for ch in phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if ch.isdigit()
    )
    digits = e164[1:]
    cc = str(number.country_code)
    nsn = digits[len(cc) :]
    return [
        e164, national, digits, "00" + digits, "0" + nsn, nsn, cc + "0" + nsn, "+" + cc + "0" + nsn,
        national[:-1], national + str(rng.randrange(10)), e164[:-1], e164 + str(rng.randrange(10)),
        national[:1] + str(rng.randrange(10)) + national[2:],
    ]  # fmt: skip


def test_quick_phone_path_equals_phonenumbers_parse() -> None:
    """Every region's example numbers of every type, spelled every plain way and mangled,
    and seeded random digits: the quick path gives exactly what phonenumbers.parse gives."""
    from importer.validate.phonefast import quick_parse

    rng = random.Random(11)
    texts: set[tuple[str, str | None]] = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (
            phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.VOIP,
            phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.UAN,
        ):  # fmt: skip
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                for text in _shapes_of(example, rng):
                    texts.update({(text, region), (text, "ID")})
    for region in ("ID", "US", "GB", "IN", "AU", "DE", "IT", "AR", "MX", "BR", "RU", "CN", "SG"):
        for _ in range(150):
            lead = rng.choice(["", "0", "00", "+", "+62", "62", "1", "8"])
            body = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 15)))
            texts.add((lead + body, region))
    # +61 without its +, read for CC: parse goes on with AU's metadata (a carrier code)
    texts.update({("61183162127374", "CC"), ("61183162127374", "AU"), ("7840123456", "KZ")})
    quick = without_plus = 0
    for text, region in sorted(texts, key=lambda t: (t[0], t[1] or "")):
        mobile = rng.random() < 0.5
        fast = parse_phone(text, default_region=region, require_mobile=mobile)
        slow = parse_phone(text, default_region=region, require_mobile=mobile, quick=False)
        assert fast == slow, (text, region, mobile)
        plus = text.startswith(("+", "00"))
        as_parsed = ("+" + text[2:] if text.startswith("00") else text, None if plus else region)
        number = quick_parse(*as_parsed)
        took = number is not None
        if took:  # the very number parse builds, not just the same verdict on it
            assert number == phonenumbers.parse(*as_parsed), (text, region)
        quick += took
        code = str(phonenumbers.country_code_for_region(region or "ZZ"))
        without_plus += took and not plus and text.startswith(code)
    assert quick > len(texts) // 4  # the quick path is really exercised
    assert without_plus > 500  # ... and its country-code-without-plus reading too


def test_region_and_type_equal_phonenumbers() -> None:
    """Every region's (and non-geographic code's) example number of every type, its invalid
    example, and each mangled (a digit changed, dropped, added; random digits after its
    first ones): the same type as
    ``phonenumbers.number_type`` gives, UNKNOWN (invalid) included, and the same region as
    ``region_code_for_number``."""
    from importer.validate.phonefast import region_and_type

    rng = random.Random(5)
    kinds = [v for k, v in vars(phonenumbers.PhoneNumberType).items() if k.isupper()]
    examples = [
        phonenumbers.example_number_for_type(region, kind)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in kinds
    ]
    examples += [phonenumbers.invalid_example_number(r) for r in phonenumbers.SUPPORTED_REGIONS]
    examples += [
        phonenumbers.example_number_for_non_geo_entity(code)
        for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    numbers: list[phonenumbers.PhoneNumber] = []
    for example in filter(None, examples):
        digits = str(example.national_number)
        at = rng.randrange(len(digits))
        tails = [  # the example's leading digits, then random ones to a random length
            digits[: rng.randint(1, 3)] + "".join(rng.choices("0123456789", k=rng.randint(1, 12)))
            for _ in range(4)
        ]
        for nsn in (
            digits, digits[:at] + str(rng.randrange(10)) + digits[at + 1 :],
            digits[:-1], digits + str(rng.randrange(10)), *tails,
        ):  # fmt: skip
            number = phonenumbers.PhoneNumber()
            number.merge_from(example)
            number.national_number = int(nsn)
            numbers.append(number)
    seen = set()
    for number in numbers:
        expected = phonenumbers.number_type(number)
        owner = phonenumbers.region_code_for_number(number)
        assert region_and_type(number) == (owner, expected), number
        seen.add(expected)
    assert len(numbers) > 10_000
    assert len(seen) >= 10  # every branch: each special type, fixed/mobile, both, unknown


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from(" \t\n\r\x00\x1f\x7f\x85\xa0\u2003\u200bab\u00e9"),
                        max_size=7), min_size=1, max_size=3))  # fmt: skip
def test_names_are_cleaned_like_python_would(cells: list[str]) -> None:
    """Control characters become spaces, whitespace runs collapse, ends are trimmed."""

    def reference(value: str) -> str | None:
        spaced = "".join(" " if unicodedata.category(c) == "Cc" else c for c in value)
        return " ".join(spaced.split()) or None

    columns = tuple(f"n{i}" for i in range(len(cells)))
    frame = pl.DataFrame({c: [v] for c, v in zip(columns, cells, strict=True)})
    assert frame.select(clean_text(pl.col("n0"))).item() == reference(cells[0])
    parts = [r for r in map(reference, cells) if r]
    assert frame.select(full_name(columns)).item() == (" ".join(parts) or None)


def test_the_shortcuts_run_only_on_the_phonenumbers_they_are_held_equal_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The equality tests above ran on this phonenumbers: the shortcuts are on here (CI
    fails on a new minor version until it is checked and HELD_EQUAL moves), and off for any
    other version, where phonenumbers decides every number."""
    from importer.validate import phonefast

    assert phonefast.FAST, f"phonenumbers {phonenumbers.__version__} is not held equal"
    assert phonefast.held_equal("9.0.43")
    assert not phonefast.held_equal("9.1.0")
    assert not phonefast.held_equal("10.0.0")
    assert not phonefast.held_equal("nine")
    monkeypatch.setattr(phonefast, "FAST", False)
    number = phonenumbers.parse("+6281234567890")
    assert phonefast.quick_parse("+6281234567890", None) is None
    assert phonefast.region_and_type(number) == (
        phonenumbers.region_code_for_number(number), phonenumbers.number_type(number)
    )
    for text in ("081234567890", "+6281234567890", "886912345678", "+4915112345678"):
        assert parse_phone(text, default_region="ID", require_mobile=False) == parse_phone(
            text, default_region="ID", require_mobile=False, quick=False
        )
