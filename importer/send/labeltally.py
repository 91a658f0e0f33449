"""How the wanted labels went, counted per contact and label: attached by this run, already
in place (the journal knew), or failed, by reason. summary.json's ``labels`` object, a
closing line and a section of report.html; a failed one makes the exit code 1 (``tally``).

Reasons (``failed_by_reason``): ``refused_name`` (a control, zero-width or bidirectional
character), ``not_listed`` (Kirim's labels could not be listed), ``not_made`` (the label could
not be made), ``call_failed`` (``bulk_label`` failed, or the run stopped first),
``deleted_in_kirim`` (the contact is gone: the next run creates it again), ``team_mismatch``,
``other_org``, ``skipped`` (Kirim skipped it without saying why), ``skipped_unknown`` (which
contacts a call skipped could not be found out), ``lookup_failed`` and ``lookup_mismatch``
(a skipped contact's lookup failed or answered another record), ``no_contact_id`` (Kirim's
409 named no contact to put them on), ``not_attempted`` (the run stopped before the label's
call was sent).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LabelTally:
    attached: int = 0
    in_place: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.reasons.values())

    def fail(self, reason: str, n: int = 1) -> None:
        if n:
            self.reasons[reason] += n

    def summary(self) -> dict[str, Any]:
        """summary.json's ``labels``."""
        return {
            "attached": self.attached,
            "already_in_place": self.in_place,
            "failed": self.failed,
            "failed_by_reason": dict(sorted(self.reasons.items())),
        }


def closing_line(labels: Mapping[str, Any] | None) -> str | None:
    """The closing line of a run that wanted labels: none when it wanted none."""
    if not labels:
        return None
    attached, in_place, failed = (
        labels.get("attached", 0), labels.get("already_in_place", 0), labels.get("failed", 0)
    )  # fmt: skip
    if not attached + in_place + failed:
        return None
    line = f"Labels: {attached} attached, {in_place} already in place, {failed} failed"
    if failed:
        reasons = sorted(labels.get("failed_by_reason", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        line += " (" + ", ".join(f"{k} {v}" for k, v in reasons) + "; see warning in results.csv)"
    return line
