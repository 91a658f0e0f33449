"""Numbers written the WhatsApp way, country code without ``+``: never moved to the default
region in silence (issue 19, item 1)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import phonenumbers
import pytest

from importer.cli import main
from importer.options import BareNumbers
from importer.validate.phones import parse_phone

# As wa.me links, and the WhatsApp tools that store numbers from them, write a number: in
# full international format, digits only, country code first, no "+", zeros or dashes.
LINKS = {
    "Mei Ling": "https://wa.me/886912345678",  # a Taiwan mobile; also a valid ID mobile
    "Tan": "https://wa.me/6591234567",  # a Singapore mobile; as ID: a fixed line
    "Ani": "https://wa.me/6281234567890",  # the default region's own code: one reading
}


def _wa_me_export(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["Name", "WhatsApp"])
        for name, link in LINKS.items():
            out.writerow([name, link.removeprefix("https://wa.me/")])
        out.writerow(["Budi", "0812-3456-7891"])  # national, with its trunk prefix 0
    return path


def _plan(tmp_path: Path, *extra: str) -> tuple[int, list[dict[str, str]], dict[str, object]]:
    path = _wa_me_export(tmp_path / "wa.csv")
    reports = tmp_path / "reports"
    code = main(["plan", str(path), "--default-region", "ID", "--report-dir", str(reports),
                 *extra])  # fmt: skip
    with (reports / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return code, rows, json.loads((reports / "summary.json").read_text())


def test_a_wa_me_number_valid_both_ways_is_refused_naming_both_readings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows, summary = _plan(tmp_path)
    assert code == 1
    taiwan = rows[0]
    assert (taiwan["status"], taiwan["error_code"], taiwan["phone_number"]) == (
        "invalid", "ambiguous_country", ""
    )  # fmt: skip
    assert "+886912345678 (TW mobile)" in taiwan["error_message"]
    assert "+62886912345678 (ID mobile)" in taiwan["error_message"]
    assert "--bare-numbers international|national" in taiwan["error_message"]
    assert summary["reasons"] == {"ambiguous_country": 1}  # plan counts them
    assert "by reason: ambiguous_country 1" in capsys.readouterr().out


def test_the_one_mobile_reading_wins_with_a_warning(tmp_path: Path) -> None:
    _, rows, _ = _plan(tmp_path)
    singapore = rows[1]
    assert (singapore["status"], singapore["phone_number"]) == ("valid", "+6591234567")
    assert (singapore["phone_region"], singapore["region_source"]) == ("SG", "country_code")
    assert singapore["warning"] == (
        "column 'WhatsApp': '6591234567' was read as +6591234567 (SG mobile), not "
        "+626591234567 (ID fixed line): only that reading is a mobile (write it with + or "
        "choose with --bare-numbers)"
    )


def test_numbers_that_read_one_way_do_not_change(tmp_path: Path) -> None:
    _, rows, _ = _plan(tmp_path)
    assert [(r["phone_number"], r["warning"]) for r in rows[2:]] == [
        ("+6281234567890", ""),
        ("+6281234567891", ""),
    ]


@pytest.mark.parametrize(
    ("choice", "taiwan", "singapore"),
    [("international", "+886912345678", "+6591234567"), ("national", "+62886912345678",
                                                          "+626591234567")],
)  # fmt: skip
def test_bare_numbers_chooses_the_reading(
    choice: str, taiwan: str, singapore: str, tmp_path: Path
) -> None:
    code, rows, summary = _plan(tmp_path, "--bare-numbers", choice)
    assert code == 0
    assert [r["phone_number"] for r in rows] == [
        taiwan, singapore, "+6281234567890", "+6281234567891"
    ]  # fmt: skip
    assert not any(r["warning"] for r in rows)
    assert summary["reasons"] == {}


def test_international_reads_bare_numbers_without_a_default_region() -> None:
    got = parse_phone("447911123456", default_region=None, require_mobile=False,
                      bare_numbers="international")  # fmt: skip
    assert (got.e164, got.region_source) == ("+447911123456", "country_code")
    refused = parse_phone("447911123456", default_region=None, require_mobile=False)
    assert refused.code == "no_region"


@pytest.mark.parametrize("bare", ["refuse", "international", "national"])
def test_the_fast_path_reads_bare_numbers_as_phonenumbers_does(bare: BareNumbers) -> None:
    """Every region's example mobile and fixed line, written the wa.me way (digits, no +),
    and its national significant number alone, read with a few default regions: the quick
    path and phonenumbers alone agree, ambiguity and warnings included."""
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    texts = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in kinds:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                texts.update({e164[1:], phonenumbers.national_significant_number(example)})
    codes = set()
    for text in sorted(texts):
        for region in ("ID", "US", "SG", "IN", "BR"):
            fast = parse_phone(text, default_region=region, require_mobile=False,
                               bare_numbers=bare)  # fmt: skip
            slow = parse_phone(text, default_region=region, require_mobile=False,
                               bare_numbers=bare, quick=False)  # fmt: skip
            assert fast == slow, (text, region)
            codes.add(fast.code)
    if bare == "refuse":
        assert "ambiguous_country" in codes  # the rule is really exercised
