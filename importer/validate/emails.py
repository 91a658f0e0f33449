"""One email cell -> its normalised form, or why it is not an address. Never raises.

``email-validator`` (no deliverability check) decides. Plain ASCII addresses never get here:
``columns.fast_email`` settles them over the whole column first, held equal to
email-validator by the tests.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def check_email(raw: str) -> tuple[str | None, str | None]:
    """``(normalised, None)`` for an address, ``(None, reason)`` otherwise."""
    text = raw.strip()
    try:
        return validate_email(text, check_deliverability=False).normalized, None
    except EmailNotValidError as exc:
        return None, str(exc)
    except Exception as exc:  # a bad cell must never end the run
        return None, f"it cannot be checked ({type(exc).__name__})"
