"""The one rule for what never leaves the process in the clear: API keys (by their shape, and
the run's own key whatever its shape), and, in logs, contact details (masked).

The log filter (``progress``), the client's reading of server messages (``send.client``: a
message that reaches a report file or the closing line went through here first) and the
CLI's refusal of keys given as flags (``KEY_SHAPE``) all use it.
"""

from __future__ import annotations

import re

KEY_SHAPE = re.compile(r"\b(?:kdv|kc)_(?:live|test)_[A-Za-z0-9_-]+")
# A phone value, and nothing else that has digits: an international number (``+``), a
# national one (trunk ``0``), or a bare run of 10 to 15 digits (a number with its country code);
# separators (spaces, dots, dashes, brackets) between digits. Counts, durations, dates and
# identifiers are left alone: a count has no ``+`` or leading ``0`` and fewer than 10 digits.
_SEP = r"[\s().-]{0,2}"
_PHONE = re.compile(
    rf"(?<![\w.+])(?:\+\d(?:{_SEP}\d){{6,14}}|0\d(?:{_SEP}\d){{6,13}}|\d{{10,15}})(?![\w.+])"
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")
REDACTED = "[redacted]"


def redact(text: str, *, secrets: tuple[str, ...] = (), mask_contacts: bool = False) -> str:
    """Remove keys (and any given secret) always; mask phones and emails when asked (logs)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = KEY_SHAPE.sub(REDACTED, text)
    if mask_contacts:
        text = _PHONE.sub(lambda m: m.group()[:4] + "…" + m.group()[-2:], text)
        text = _EMAIL.sub(r"\1…@\2", text)
    return text
