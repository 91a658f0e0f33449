"""One phone cell -> E.164 or a reason code, with ``phonenumbers``. Never raises.

``default_region`` applies ONLY to national numbers: a cell starting with ``+`` or with the
international ``00`` prefix (``0062812...`` is ``+62812...``) keeps its own country code.
Spreadsheet damage such as ``6.28123E+11`` is reported (``scientific_notation``), never repaired:
the lost digits cannot be known.

Reason codes: missing_phone, not_a_number, too_short, too_long, invalid_for_region,
no_region, invalid_number, scientific_notation, not_mobile.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumberDesc,
    PhoneNumberType,
    ValidationResult,
)

_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_SEPARATORS = re.compile(r"[\s().\-/\u00a0]")
_LETTERS = re.compile(r"[^\W\d_]")
_PLAIN = re.compile(r"\+?[0-9]{5,20}")
MAX_LEN = 100  # phonenumbers refuses > 250; nothing this long is one phone number

TYPE_NAMES: dict[int, str] = {
    value: name.lower()
    for name, value in vars(PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}
MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


class PhoneResult(NamedTuple):
    """What became of one phone cell; ``e164`` is None exactly when ``code`` is set."""

    e164: str | None
    code: str | None  # reason code when invalid
    problem: str | None  # the reason in words, without the column: "is too short for ID"
    region: str | None  # region the number belongs to / was parsed with
    region_source: str | None  # "plus_sign" | "idd_00" | "default"
    number_type: str | None  # lowercase PhoneNumberType name


def _where(region: str | None, country_code: int | None = None) -> str:
    if country_code:
        found = phonenumbers.region_code_for_country_code(country_code)
        return f"+{country_code}" if found in (None, "ZZ", "001") else f"{found} (+{country_code})"
    return region or "any region"


def parse_phone(
    raw: str | None, *, default_region: str | None, require_mobile: bool, quick: bool = True
) -> PhoneResult:
    """Normalise one cell; every outcome is a value, never an exception.

    ``quick=False`` always goes through ``phonenumbers.parse`` (the tests compare the two).
    """
    text = (raw or "").strip()
    if not text:
        return PhoneResult(None, "missing_phone", "is empty", None, None, None)
    compact = text
    if not _PLAIN.fullmatch(text):  # the usual cell is plain digits: none of this applies
        compact = _SEPARATORS.sub("", text)
        if refused := _not_a_phone(text, compact):
            return refused
    region: str | None
    if compact.startswith("+"):
        source, region, to_parse = "plus_sign", None, text
    elif compact.startswith("00"):
        source, region, to_parse = "idd_00", None, "+" + compact[2:]
    elif default_region:
        source, region, to_parse = "default", default_region.upper(), text
    else:
        return PhoneResult(
            None, "no_region",
            "has no country code (+...) and no default region was given "
            "(use --default-region, e.g. ID)",
            None, None, None,
        )  # fmt: skip
    number = _quick_parse(to_parse, region) if quick else None
    if number is None:
        try:
            number = phonenumbers.parse(to_parse, region)
        except NumberParseException as exc:
            return _parse_error(exc, region, source)
    kind = phonenumbers.number_type(number)  # UNKNOWN exactly when not is_valid_number
    owner = phonenumbers.region_code_for_number(number) or region
    if kind == PhoneNumberType.UNKNOWN:
        return _invalid(number, region, owner, source)
    type_name = TYPE_NAMES.get(kind, "unknown")
    if require_mobile and kind not in MOBILE_TYPES:
        problem = f"is a {type_name.replace('_', ' ')} number, not a mobile (--require-mobile)"
        return PhoneResult(None, "not_mobile", problem, owner, source, type_name)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return PhoneResult(e164, None, None, owner, source, type_name)


def _not_a_phone(text: str, compact: str) -> PhoneResult | None:
    """Why ``text`` (``compact``: without separators) cannot be a phone number, if it cannot."""
    if _SCIENTIFIC.fullmatch(text):
        return PhoneResult(
            None, "scientific_notation",
            "is in scientific notation (a spreadsheet turned the phone into a number and lost "
            "digits); fix the cell, stored as text",
            None, None, None,
        )  # fmt: skip
    if len(text) > MAX_LEN or not any(ch.isdigit() for ch in compact):
        return PhoneResult(None, "not_a_number", "is not a phone number", None, None, None)
    if _LETTERS.search(compact):
        return PhoneResult(
            None, "not_a_number", "is not a phone number (it contains letters)", None, None, None
        )
    return None


def _quick_parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """The number ``phonenumbers.parse(text, region)`` returns, for a plain ``+?digits`` text
    whose reading is certain; None for every other text (``parse`` then decides).

    ``parse`` costs ~25 us, mostly on generic input handling a plain digit string does not
    need; the number it builds depends only on the region's metadata as followed here
    (public ``PhoneMetadata`` fields). Only plain shapes are taken: ``+`` and a known
    geographic country code with no national prefix after it; the region's country code
    without its ``+`` when ``parse`` would read it so (``_reads_without_plus``), again with no
    national prefix after it; or a national number that neither starts with the region's
    international prefix nor needs a prefix transform, and whose national prefix (if any)
    leaves a possible, well-formed national number. Anything else, a leading zero after the
    prefix included, returns None. Each step is the one ``parse`` takes for such a text, so
    the number is the same whether it is valid or not; validity, type, region, reasons and
    formatting stay with phonenumbers. Results equal ``parse``'s over every region's example
    numbers, spelled every plain way and mangled, and seeded random digits
    (tests/test_normalize.py).
    """
    if not _PLAIN.fullmatch(text):
        return None
    nsn: str | None
    if text[0] == "+":
        code, nsn = _country_code(text[1:])
        owner = phonenumbers.region_code_for_country_code(code) if code else None
        meta = PhoneMetadata.metadata_for_region(owner) if owner and owner != "001" else None
        if meta is None or _matches_at_start(meta.national_prefix_for_parsing, nsn):
            return None
    else:
        meta = PhoneMetadata.metadata_for_region(region) if region else None
        if meta is None or _matches_at_start(meta.international_prefix, text):
            return None
        code, nsn = meta.country_code or 0, _national_number(text, meta, region)
    if nsn is None or not code or not 2 <= len(nsn) <= 17 or nsn[0] == "0":
        return None
    return phonenumbers.PhoneNumber(country_code=code, national_number=int(nsn))


def _national_number(text: str, meta: PhoneMetadata, region: str | None) -> str | None:
    """The national number ``parse`` reads from ``text`` (no ``+``) for ``region``, or None
    when that reading is not certain."""
    npfp, prefix = meta.national_prefix_for_parsing, str(meta.country_code)
    if text.startswith(prefix):  # maybe the country code without its +: weighed as parse does
        rest = text[len(prefix) :]
        if _matches_at_start(npfp, rest) or meta.general_desc is None:
            return None
        without = _reads_without_plus(text, rest, meta.general_desc)
        if without is None:
            return None
        if without:  # parse goes on with the metadata of the code's main region
            main = phonenumbers.region_code_for_country_code(meta.country_code or 0)
            return rest if main == region else None
    found = _compiled(npfp).match(text) if npfp else None
    if found is None:
        return text
    general, nsn = meta.general_desc, text[found.end() :]
    if (
        meta.national_prefix_transform_rule
        or general is None
        or not general.national_number_pattern
        or not _compiled(general.national_number_pattern).fullmatch(nsn)
        or len(nsn) not in general.possible_length
        or len(nsn) in (general.possible_length_local_only or ())
    ):
        return None
    return nsn


def _reads_without_plus(text: str, rest: str, general: PhoneNumberDesc) -> bool | None:
    """Whether ``parse`` reads ``text`` as the region's country code, without its ``+``,
    followed by ``rest``: when ``text`` does not fit the region's number pattern and ``rest``
    does, or ``text`` is too long for the region. None: the metadata is not plain enough."""
    pattern, lengths = general.national_number_pattern, general.possible_length
    if not pattern or not lengths or list(lengths) != sorted(lengths):
        return None
    whole = _compiled(pattern).fullmatch(text) is not None
    if not whole and _compiled(pattern).fullmatch(rest) is not None:
        return True
    size = len(text)
    return size > lengths[-1] and size not in (general.possible_length_local_only or ())


def _country_code(digits: str) -> tuple[int, str]:
    """(the leading 1-3 digit country calling code, the rest), or (0, digits) without one."""
    if digits[:1] != "0":
        for size in (1, 2, 3):
            if int(digits[:size]) in COUNTRY_CODE_TO_REGION_CODE:
                return int(digits[:size]), digits[size:]
    return 0, digits


def _matches_at_start(pattern: str | None, text: str) -> bool:
    return pattern is not None and pattern != "" and _compiled(pattern).match(text) is not None


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _parse_error(exc: NumberParseException, region: str | None, source: str) -> PhoneResult:
    kinds = {
        NumberParseException.INVALID_COUNTRY_CODE: (
            "invalid_number", "does not start with a known country code"
        ),
        NumberParseException.NOT_A_NUMBER: ("not_a_number", "is not a phone number"),
        NumberParseException.TOO_SHORT_AFTER_IDD: ("too_short", "is too short"),
        NumberParseException.TOO_SHORT_NSN: ("too_short", f"is too short for {_where(region)}"),
        NumberParseException.TOO_LONG: ("too_long", "is too long"),
    }  # fmt: skip
    code, problem = kinds.get(exc.error_type, ("invalid_number", "is not a valid phone number"))
    return PhoneResult(None, code, problem, region, source, None)


def _invalid(
    number: phonenumbers.PhoneNumber, region: str | None, owner: str | None, source: str
) -> PhoneResult:
    """Why a parsed number is not valid: its length, or its digits for the region."""
    where = _where(region, number.country_code)
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.IS_POSSIBLE:
        problem = f"is not a valid number for {where}"
        return PhoneResult(None, "invalid_for_region", problem, owner, source, None)
    code, problem = {
        ValidationResult.TOO_SHORT: ("too_short", f"is too short for {where}"),
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY: (
            "too_short", f"is too short for {where} (a local number without its area code)"
        ),
        ValidationResult.TOO_LONG: ("too_long", f"is too long for {where}"),
        ValidationResult.INVALID_COUNTRY_CODE: (
            "invalid_number", f"has an unknown country code +{number.country_code}"
        ),
    }.get(reason, ("invalid_number", f"has a length no number in {where} has"))  # fmt: skip
    return PhoneResult(None, code, problem, owner, source, None)
