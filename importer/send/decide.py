"""Which request a row needs: a pure function of the row (its create key and body
fingerprint), its journal entry, the mode and the clock. No I/O, no state:
``tests/send/test_decide.py`` holds it to a table of cases.

- A phone the journal holds ``done`` needs no request (``SETTLED``) in ``skip`` and ``create``
  mode: in the run that did it, it keeps that run's outcome; in a later run it is ``exists``.
  In ``update`` mode the journal's fingerprint of the body Kirim last accepted decides: the
  same body is ``unchanged`` (no request at all); another body is PATCHed straight to the
  contact id the journal holds (``PATCH``, no lookup); a journal that has no fingerprint yet
  (written by 0.2.0, or the contact was found rather than written by us) looks it up once.
- A phone the journal holds ``pending`` may or may not have reached Kirim. Re-sent with the
  same key while Kirim still keeps it (23 h: ``KEY_TTL_S``), Kirim replays instead of
  creating, so ``create`` mode sends it again (``CREATE``). When the key may have expired,
  the body changed since (another key), or it ever was pending or done under another key
  (``needs_lookup``), only a lookup can tell: ``LOOKUP`` in any mode.
- Anything else (``failed``, or not in the journal): ``LOOKUP`` in ``skip``/``update`` mode,
  ``CREATE`` in ``create`` mode.
- ``verify`` (``--verify``): a phone the journal holds ``done`` from an earlier run, which
  would need no request (``exists``, ``unchanged``), is looked up instead (``VERIFY``): a
  contact deleted in Kirim since is created again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from importer.options import OnExisting
from importer.records import Status
from importer.send.records import Entry

KEY_TTL_S = 23 * 3600  # Kirim keeps keys 24 h; an hour of margin for clock skew


class Action(StrEnum):
    SETTLED = "settled"  # no request: the journal already has the answer
    CREATE = "create"  # create with the row's key, no lookup
    LOOKUP = "lookup"  # look the phone up; then exists, PATCH (update mode) or create
    PATCH = "patch"  # update mode, a changed body: PATCH the journal's contact id
    VERIFY = "verify"  # --verify: look up a contact the journal holds done; gone: create it


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    status: Status | None = None  # for SETTLED: the status the row is reported with


def decide(
    *,
    entry: Entry | None,
    key: str,
    body_hash: str,
    mode: OnExisting,
    now: float,
    run_id: int,
    verify: bool = False,
) -> Decision:
    """What to send for one row whose create would carry ``key`` and whose body has the
    fingerprint ``body_hash``."""
    if entry is not None and entry.state == "done":
        same = mode != "update" or entry.body_hash == body_hash
        if entry.run_id == run_id and entry.outcome is not None and same:  # done earlier in
            return Decision(Action.SETTLED, Status(entry.outcome))  # this (resumed) run
        if verify and (mode != "update" or entry.body_hash == body_hash):
            return Decision(Action.VERIFY)
        if mode != "update":
            return Decision(Action.SETTLED, Status.EXISTS)
        if entry.body_hash == body_hash:
            return Decision(Action.SETTLED, Status.UNCHANGED)
        if entry.body_hash is not None and entry.contact_id is not None:
            return Decision(Action.PATCH)
        return Decision(Action.LOOKUP)
    if entry is not None and entry.state == "pending":
        fresh = entry.idem_key == key and now - entry.sent_at < KEY_TTL_S
        if not fresh or entry.needs_lookup:
            return Decision(Action.LOOKUP)
    return Decision(Action.CREATE if mode == "create" else Action.LOOKUP)
