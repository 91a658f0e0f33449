"""``--log-format json``: every log line on standard error one JSON object, for log shippers
(journald, Loki, CloudWatch, Datadog).

Each object has ``ts`` (ISO 8601, UTC, milliseconds), ``level`` (``info``, ``warning``,
``error``), ``event`` and ``message`` (the text line's words), then the event's own fields.
A record names its event and fields with ``extra={"event": ..., "fields": {...}}``; one
without (a library's) is ``log``. The event names and their fields are a stable interface,
listed in the README ("Nightly jobs", JSON events): new fields may be added, none renamed.

Redaction applies as for text lines: the record's message has been through the run's filter
(``progress.redacting``) before any handler, and the string fields are redacted here with the
same run's key and masking.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from importer.progress import current_redaction
from importer.redact import redact

BASE = ("ts", "level", "event", "message")
# Fields that are identifiers, not contact details: a 15-digit phone_number_id reads like a
# phone to the masking, so these are cleared of keys only.
IDENTIFIERS = frozenset({"account", "accounts", "org"})
# What the text format's quiet mode keeps besides warnings: the run's last word.
QUIET_EVENTS = frozenset({"summary"})


def _clean(value: Any, secrets: tuple[str, ...], mask: bool) -> Any:
    if isinstance(value, str):
        return redact(value, secrets=secrets, mask_contacts=mask)
    if isinstance(value, dict):
        return {str(k): _clean(v, secrets, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, secrets, mask) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value), secrets=secrets, mask_contacts=mask)


def line(
    *, level: str, event: str, message: str, fields: dict[str, Any] | None = None,
    created: float | None = None,
) -> str:
    """One JSON log line (without its newline)."""
    secrets, mask = current_redaction()
    when = dt.datetime.fromtimestamp(
        dt.datetime.now(dt.UTC).timestamp() if created is None else created, dt.UTC
    )
    out: dict[str, Any] = {
        "ts": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "event": event,
        "message": redact(message, secrets=secrets, mask_contacts=mask),
    }
    for key, value in (fields or {}).items():
        if key not in BASE:
            out[key] = _clean(value, secrets, mask and key not in IDENTIFIERS)
    return json.dumps(out, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        return line(
            level=record.levelname.lower(),
            event=str(getattr(record, "event", "log")),
            message=record.getMessage(),
            fields=fields if isinstance(fields, dict) else None,
            created=record.created,
        )


class QuietJson(logging.Filter):
    """``--quiet`` in JSON: warnings and errors, and the summary event."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or getattr(record, "event", "") in QUIET_EVENTS
