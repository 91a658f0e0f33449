"""One email cell -> its normalised form, or why it is not an address. Never raises.

``email-validator`` (no deliverability check) decides. It costs ~20-40 us per address, so the
plain ASCII shape nearly every export holds (``dot.atom@host.example.com``) takes a fast path
that returns exactly what email-validator returns for it (the domain lowercased, the rest as
is); the tests check the two agree. Anything else goes through email-validator.
"""

from __future__ import annotations

import re

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
FAST_SHAPE = rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[A-Za-z]{{2,63}})"  # (local)@(domain)
SPECIAL_DOMAINS = tuple(SPECIAL_USE_DOMAIN_NAMES)  # left to email-validator, like "--"
_FAST = re.compile(FAST_SHAPE)


def _fast(text: str) -> str | None:
    match = _FAST.fullmatch(text)
    if match is None or len(text) > 254 or len(match[1]) > 64 or len(match[2]) > 253:
        return None
    domain = match[2].lower()
    if "--" in domain or any(domain == d or domain.endswith("." + d) for d in SPECIAL_DOMAINS):
        return None  # IDNA hyphen rules and special-use names: let email-validator say
    return f"{match[1]}@{domain}"


def check_email(raw: str) -> tuple[str | None, str | None]:
    """``(normalised, None)`` for an address, ``(None, reason)`` otherwise."""
    text = raw.strip()
    fast = _fast(text)
    if fast is not None:
        return fast, None
    try:
        return validate_email(text, check_deliverability=False).normalized, None
    except EmailNotValidError as exc:
        return None, str(exc)
    except Exception as exc:  # a bad cell must never end the run
        return None, f"it cannot be checked ({type(exc).__name__})"
