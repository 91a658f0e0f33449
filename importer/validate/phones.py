"""One phone cell -> E.164 or a reason code, with ``phonenumbers``. Never raises.

``default_region`` applies ONLY to national numbers: a cell starting with ``+`` or with the
international ``00`` prefix (``0062812...`` is ``+62812...``) keeps its own country code.
Spreadsheet damage such as ``6.28123E+11`` is reported (``scientific_notation``), never repaired:
the lost digits cannot be known. A float export's ``6281234567890.0`` is read as the whole
number it stands for, with a warning.

Cells as people type them: a ``tel:`` link and a ``https://wa.me/62...`` (or
``api.whatsapp.com/send?phone=``) link are read as their number; no-break, narrow and thin
spaces are separators; an extension (``ext. 12``, ``x12``, ``#12``) makes the cell invalid
(``has_extension``: a WhatsApp number has none), and so do two numbers in one cell
(``several_numbers``: split by ``/``, ``,``, ``;``, a line break, `` or `` or Google
Contacts' `` ::: ``).

A number written without ``+`` or ``00`` may be read two ways: as a national number of the
default region, and as an international one whose leading digits are its country code, the
way wa.me links and WhatsApp tools store numbers (``886912345678``: a Taiwan mobile, and with
``--default-region ID`` also a valid ``+62886912345678``). When both readings are valid and
differ, and the digits are the national number whole (no trunk prefix such as ``0812...``'s
``0`` and no country code read off, which mark a national or an international number), the
number is ambiguous (``_bare``, the one place this is decided): the reading that is a mobile
wins, with a warning, when only one is; else the row is ``ambiguous_country``, unless
``--bare-numbers international|national`` chose. ``international`` also reads the digits with
their country code where the national reading is not valid, or no default region was given.

Reason codes: missing_phone, not_a_number, too_short, too_long, invalid_for_region,
no_region, invalid_number, scientific_notation, not_mobile, has_extension, several_numbers,
ambiguous_country.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

from importer.options import PHONE_CELL_MAX, BareNumbers
from importer.validate.phonefast import PLAIN, quick_parse, region_and_type

_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
_FLOAT = re.compile(r"^(\+?\d{7,})\.0+$")  # 6281234567890.0: a number stored as a float
_SPACES = re.compile(r"[\u00a0\u2007\u2009\u202f]")  # no-break, figure, thin, narrow no-break
_LINK = re.compile(
    r"^(?:tel:(?://)?|(?:https?://)?(?:www\.)?(?:wa\.me/|api\.whatsapp\.com/send/?\?phone=))"
    r"(?P<number>[^?&#]*)",
    re.IGNORECASE,
)
_EXTENSION = re.compile(
    r"(?i)(?:\b(?:ext|extn|extension|ekst)\b\.?|(?<=[\d\s.)])x|#)\s*:?\s*\d{1,7}$"
)
_SEVERAL = re.compile(r"\s*(?::::|;|,|/|[\r\n]|\s(?:or|atau|o|ou)\s)\s*", re.IGNORECASE)
_DIGITS = re.compile(r"\d")
_SEPARATORS = re.compile(r"[\s().\-/\u00a0]")
_LETTERS = re.compile(r"[^\W\d_]")
MAX_LEN = PHONE_CELL_MAX  # (options: shared with records.phone_key)

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
    warning: str | None = None  # how the cell was read, when a person should know


class _Reading(NamedTuple):
    """One parse of a text: the number, the region it belongs to, and its type."""

    number: phonenumbers.PhoneNumber
    owner: str | None
    kind: int  # PhoneNumberType; UNKNOWN exactly when the number is not valid
    source: str  # region_source


def _where(region: str | None, country_code: int | None = None) -> str:
    if country_code:
        found = phonenumbers.region_code_for_country_code(country_code)
        return f"+{country_code}" if found in (None, "ZZ", "001") else f"{found} (+{country_code})"
    return region or "any region"


def parse_phone(
    raw: str | None,
    *,
    default_region: str | None,
    require_mobile: bool,
    bare_numbers: BareNumbers = "refuse",
    quick: bool = True,
) -> PhoneResult:
    """Normalise one cell; every outcome is a value, never an exception.

    ``quick=False`` always goes through ``phonenumbers.parse``, ``region_code_for_number``
    and ``number_type`` (the tests compare the two).
    """
    text = (raw or "").strip()
    if not text:
        return PhoneResult(None, "missing_phone", "is empty", None, None, None)
    warning = None
    if not PLAIN.fullmatch(text):  # the usual cell is plain digits: none of this applies
        text, warning, refused = _as_typed(text)
        if refused:
            return refused
    result = _parse(
        text, default_region=default_region, require_mobile=require_mobile, bare=bare_numbers,
        quick=quick,
    )  # fmt: skip
    if warning and result.e164:
        return result._replace(warning="; ".join(filter(None, (warning, result.warning))))
    return result


def _as_typed(text: str) -> tuple[str, str | None, PhoneResult | None]:
    """A cell as people type it -> (the number's text, a warning, or why it is refused)."""
    text = _SPACES.sub(" ", text).strip()
    if link := _LINK.match(text):
        number = link.group("number").strip()
        wa = not text.lower().startswith("tel:")
        text = "+" + number.lstrip("+") if wa and number[:1].isdigit() else number
    if floated := _FLOAT.fullmatch(text):
        return floated.group(1), f"{text!r} was read as {floated.group(1)} (a number cell)", None
    if _EXTENSION.search(text) and len(_DIGITS.findall(text)) >= 7:
        problem = "has an extension (a WhatsApp number has none); keep the number alone"
        return text, None, PhoneResult(None, "has_extension", problem, None, None, None)
    parts = [p for p in _SEVERAL.split(text) if p.strip()]
    if len(parts) > 1 and sum(len(_DIGITS.findall(p)) >= 7 for p in parts) > 1:
        shown = ", ".join(repr(p.strip()) for p in parts)
        problem = f"holds several numbers ({shown}); keep one per row"
        return text, None, PhoneResult(None, "several_numbers", problem, None, None, None)
    return text, None, None


def _parse(
    text: str, *, default_region: str | None, require_mobile: bool, bare: BareNumbers, quick: bool
) -> PhoneResult:
    compact = text
    if not PLAIN.fullmatch(text):
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
    elif bare == "international" and compact[:1].isdigit() and compact[0] != "0":
        source, region, to_parse = "country_code", None, "+" + compact
    else:
        return PhoneResult(
            None, "no_region",
            "has no country code (+...) and no default region was given "
            "(use --default-region, e.g. ID)",
            None, None, None,
        )  # fmt: skip
    read = _read(to_parse, region, source, quick)
    warning = None
    if source == "default" and bare != "national":
        chosen = _bare(compact, read, bare, quick)
        if isinstance(chosen, PhoneResult):
            return chosen
        read, warning = chosen
    if isinstance(read, PhoneResult):
        return read
    number, owner, kind, source = read
    owner = owner or region
    if kind == PhoneNumberType.UNKNOWN:
        return _invalid(number, region, owner, source)
    type_name = TYPE_NAMES.get(kind, "unknown")
    if require_mobile and kind not in MOBILE_TYPES:
        problem = f"is a {type_name.replace('_', ' ')} number, not a mobile (--require-mobile)"
        return PhoneResult(None, "not_mobile", problem, owner, source, type_name)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return PhoneResult(e164, None, None, owner, source, type_name, warning)


def _read(to_parse: str, region: str | None, source: str, quick: bool) -> _Reading | PhoneResult:
    """``to_parse`` read for ``region``: the number, its region and type; or why it cannot be."""
    number = quick_parse(to_parse, region) if quick else None
    if number is None:
        try:
            number = phonenumbers.parse(to_parse, region)
        except NumberParseException as exc:
            return _parse_error(exc, region, source)
    if quick:  # kind is UNKNOWN exactly when not is_valid_number
        owner, kind = region_and_type(number)
    else:
        owner, kind = phonenumbers.region_code_for_number(number), phonenumbers.number_type(number)
    return _Reading(number, owner, kind, source)


def _valid(read: _Reading | PhoneResult) -> _Reading | None:
    return read if isinstance(read, _Reading) and read.kind != PhoneNumberType.UNKNOWN else None


def _bare(
    digits: str, national: _Reading | PhoneResult, bare: BareNumbers, quick: bool
) -> tuple[_Reading | PhoneResult, str | None] | PhoneResult:
    """The reading of ``digits`` (no ``+``, no ``00``) to go on with, and a warning; or
    ``ambiguous_country``. ``national`` is its reading for the default region.

    Ambiguous: both readings valid and different, and the digits are the national number
    whole (a ``0`` trunk prefix or a country code read off says how the number was written).
    Then ``bare`` decides; by default the one mobile reading wins, with a warning, else the
    number is refused. ``international`` also takes the country-code reading where the
    national one is not valid. Numbers that read only one way are left as they are.
    """
    if not digits.isdecimal() or digits[0] == "0":  # no country code starts with 0
        return national, None
    home = _valid(national)
    if home is not None and phonenumbers.national_significant_number(home.number) != digits:
        return national, None
    away = _valid(_read("+" + digits, None, "country_code", quick))
    if away is None or (home is not None and away.number == home.number):
        return national, None
    if home is None:
        return (away if bare == "international" else national), None
    if bare == "international":
        return away, None
    home_mobile, away_mobile = home.kind in MOBILE_TYPES, away.kind in MOBILE_TYPES
    if home_mobile != away_mobile:
        winner, loser = (home, away) if home_mobile else (away, home)
        warning = (
            f"{digits!r} was read as {_reading(winner)}, not {_reading(loser)}: only that "
            "reading is a mobile (write it with + or choose with --bare-numbers)"
        )
        return winner, warning
    problem = (
        f"could be {_reading(away)}, its first digits the country code, or {_reading(home)}, "
        f"a national number of {home.owner}; write it with + or 00 (or the national prefix), "
        "or choose with --bare-numbers international|national"
    )
    return PhoneResult(None, "ambiguous_country", problem, home.owner, "default", None)


def _reading(read: _Reading) -> str:
    """``+886912345678 (TW mobile)``."""
    e164 = phonenumbers.format_number(read.number, phonenumbers.PhoneNumberFormat.E164)
    kind = TYPE_NAMES.get(read.kind, "unknown").replace("_", " ")
    return f"{e164} ({read.owner or _where(None, read.number.country_code)} {kind})"


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
