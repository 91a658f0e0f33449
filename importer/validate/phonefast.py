"""Some of phonenumbers' own steps, redone from its public metadata for speed: reading a plain
``+?digits`` text (``quick_parse``, in place of ``parse``), and a number's region and type
(``region_and_type``). Each returns exactly what phonenumbers would (``quick_parse``: or None
where it is not certain, and ``parse`` decides); tests/validate/test_rows.py holds both equal to
phonenumbers over every region's example numbers, spelled every plain way and mangled.

Why: a unique phone is most of ``plan``'s work. phonenumbers spends most of ``parse`` on
generic input handling, and most of ``number_type`` on compiling (from its cache) and running
each pattern twice, for shared codes (+1, +44, +61) after the region lookup has already typed
the number once; a plain digit string and precompiled patterns need none of that.

Held equal to one minor version (``HELD_EQUAL``, the one the equality tests ran on): with any
other phonenumbers installed (a user's newer 9.x), ``FAST`` is off and both functions hand
every number to phonenumbers itself: slower, never different.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    PhoneMetadata,
    PhoneNumberDesc,
    PhoneNumberType,
)

PLAIN = re.compile(r"\+?[0-9]{5,20}")  # the texts quick_parse reads
HELD_EQUAL = (9, 0)  # the phonenumbers minor version the equality tests ran on


def held_equal(version: str) -> bool:
    """Whether phonenumbers ``version`` is one these shortcuts are held equal to."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) == HELD_EQUAL


FAST = held_equal(phonenumbers.__version__)  # else phonenumbers does all of it


def quick_parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
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
    (tests/validate/test_rows.py).
    """
    if not FAST or not PLAIN.fullmatch(text):
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


class _Desc(NamedTuple):
    lengths: frozenset[int]  # empty: any length (the general description's)
    pattern: re.Pattern[str] | None  # None: no number is of this type


class _Types(NamedTuple):
    general: _Desc
    special: tuple[tuple[int, _Desc], ...]  # checked first, in phonenumbers' order
    fixed_line: _Desc
    mobile: _Desc
    same_mobile_and_fixed_line: bool


_SPECIAL = (
    "premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
    "voicemail",
)  # fmt: skip


def region_and_type(number: phonenumbers.PhoneNumber) -> tuple[str | None, int]:
    """``(phonenumbers.region_code_for_number(number), phonenumbers.number_type(number))``:
    the same checks in the same order, with each pattern compiled once and run once, and the
    national number's type worked out once (for a code that several regions share, finding
    the region already types the number against it, and ``number_type`` would find the
    region again)."""
    if not FAST:
        return phonenumbers.region_code_for_number(number), phonenumbers.number_type(number)
    code = number.country_code or 0
    regions = COUNTRY_CODE_TO_REGION_CODE.get(code)
    nsn = phonenumbers.national_significant_number(number)
    if regions is None:
        owner = None
    elif len(regions) == 1:
        owner = regions[0]
    else:
        owner = None
        for region in regions:
            meta = PhoneMetadata.metadata_for_region(region.upper(), None)
            if meta is None:
                continue
            if meta.leading_digits is not None:
                if _compiled(meta.leading_digits).match(nsn):
                    owner = region
                    break
            elif (kind := _type(nsn, meta)) != PhoneNumberType.UNKNOWN:
                return region, kind  # the owner's own type: number_type would get the same
    # None finds no metadata, like "ZZ"
    meta = PhoneMetadata.metadata_for_region_or_calling_code(code, owner or "ZZ")
    return owner, (PhoneNumberType.UNKNOWN if meta is None else _type(nsn, meta))


def _type(nsn: str, meta: PhoneMetadata) -> int:
    """phonenumbers' ``_number_type_helper(nsn, meta)``."""
    types = _types(meta)
    if not _matches(nsn, types.general):
        return PhoneNumberType.UNKNOWN
    for kind, desc in types.special:
        if _matches(nsn, desc):
            return kind
    if _matches(nsn, types.fixed_line):
        if types.same_mobile_and_fixed_line or _matches(nsn, types.mobile):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not types.same_mobile_and_fixed_line and _matches(nsn, types.mobile):
        return PhoneNumberType.MOBILE
    return PhoneNumberType.UNKNOWN


def _matches(nsn: str, desc: _Desc) -> bool:
    if desc.pattern is None or (desc.lengths and len(nsn) not in desc.lengths):
        return False
    return desc.pattern.fullmatch(nsn) is not None


_TYPES: dict[tuple[str | None, int | None], _Types] = {}


def _types(meta: PhoneMetadata) -> _Types:
    """The region's descriptions, compiled once (keyed like phonenumbers keys its metadata)."""
    key = (meta.id, meta.country_code)
    found = _TYPES.get(key)
    if found is None:
        found = _TYPES[key] = _Types(
            _desc(meta.general_desc),
            tuple(
                (getattr(PhoneNumberType, name.upper()), _desc(getattr(meta, name)))
                for name in _SPECIAL
            ),
            _desc(meta.fixed_line),
            _desc(meta.mobile),
            bool(meta.same_mobile_and_fixed_line_pattern),
        )
    return found


def _desc(desc: PhoneNumberDesc | None) -> _Desc:
    if desc is None or not desc.national_number_pattern:
        return _Desc(frozenset(), None)
    return _Desc(frozenset(desc.possible_length or ()), _compiled(desc.national_number_pattern))
