"""``decide``: which request a row needs, as a table of cases (row key, journal entry, mode,
clock)."""

from __future__ import annotations

import pytest

from importer.options import OnExisting
from importer.records import Status
from importer.send.decide import KEY_TTL_S, Action, Decision, decide
from importer.send.records import Entry

NOW = 1_000_000.0
RUN = 7
KEY = "kimp-row"
BODY = "fingerprint-of-the-row"  # the row's body_fingerprint


def entry(
    state: str,
    *,
    key: str = KEY,
    age: float = 60.0,
    run_id: int = RUN,
    outcome: str | None = None,
    needs_lookup: bool = False,
    body_hash: str | None = None,
    contact_id: str | None = None,
) -> Entry:
    return Entry(
        "+6281234567890", state, key, NOW - age, run_id, outcome, contact_id, None,
        needs_lookup, body_hash,
    )  # fmt: skip


SETTLED_EXISTS = Decision(Action.SETTLED, Status.EXISTS)
LOOKUP, CREATE, PATCH = Decision(Action.LOOKUP), Decision(Action.CREATE), Decision(Action.PATCH)
UNCHANGED = Decision(Action.SETTLED, Status.UNCHANGED)
EARLIER = {"run_id": 3, "outcome": "created", "contact_id": "ctc_1"}

CASES: list[tuple[str, Entry | None, OnExisting, Decision]] = [
    # never seen: the mode decides
    ("new, skip", None, "skip", LOOKUP),
    ("new, update", None, "update", LOOKUP),
    ("new, create", None, "create", CREATE),
    # failed for good earlier (a 4xx): nothing was created, so it is new again
    ("failed, skip", entry("failed"), "skip", LOOKUP),
    ("failed, create", entry("failed"), "create", CREATE),
    # done in this run: its own outcome; in an earlier run: exists; update mode checks it
    ("done here", entry("done", outcome="created"), "skip",
     Decision(Action.SETTLED, Status.CREATED)),
    ("done here, create", entry("done", outcome="updated"), "create",
     Decision(Action.SETTLED, Status.UPDATED)),
    ("done before", entry("done", run_id=3, outcome="created"), "skip", SETTLED_EXISTS),
    ("done before, create", entry("done", run_id=3, outcome="created"), "create", SETTLED_EXISTS),
    ("done, no outcome", entry("done", outcome=None), "skip", SETTLED_EXISTS),
    # update mode: the fingerprint of the body Kirim last accepted decides
    ("done, same body, update", entry("done", body_hash=BODY, **EARLIER), "update", UNCHANGED),
    ("done, same body, skip", entry("done", body_hash=BODY, **EARLIER), "skip", SETTLED_EXISTS),
    ("done, changed body, update", entry("done", body_hash="older", **EARLIER), "update", PATCH),
    ("done, changed, no contact id", entry("done", body_hash="older", run_id=3), "update",
     LOOKUP),
    ("done, no fingerprint (0.2.0)", entry("done", **EARLIER), "update", LOOKUP),
    ("done here, same body, update", entry("done", outcome="updated", body_hash=BODY), "update",
     Decision(Action.SETTLED, Status.UPDATED)),
    # a resumed run whose row was edited since the interrupted attempt: the edit is sent
    ("done here, edited since, update",
     entry("done", outcome="created", body_hash="older", contact_id="ctc_1"), "update", PATCH),
    # a failed PATCH leaves no outcome: looked up again, even in the run that tried it
    ("done here, no outcome, update", entry("done", contact_id="ctc_1"), "update", LOOKUP),
    # pending: may have reached Kirim. Same key within its lifetime: create replays
    ("pending fresh, create", entry("pending"), "create", CREATE),
    ("pending fresh, skip", entry("pending"), "skip", LOOKUP),
    ("pending, key about to expire", entry("pending", age=KEY_TTL_S - 1), "create", CREATE),
    ("pending, key expired", entry("pending", age=KEY_TTL_S), "create", LOOKUP),
    ("pending, body edited", entry("pending", key="kimp-older"), "create", LOOKUP),
    ("pending, once under another key", entry("pending", needs_lookup=True), "create", LOOKUP),
    ("pending, update", entry("pending"), "update", LOOKUP),
]  # fmt: skip


@pytest.mark.parametrize(("case", "journal", "mode", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(case: str, journal: Entry | None, mode: OnExisting, expected: Decision) -> None:
    got = decide(entry=journal, key=KEY, body_hash=BODY, mode=mode, now=NOW, run_id=RUN)
    assert got == expected
