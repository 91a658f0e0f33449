"""The journal: a SQLite record of every contact we meant to create and what became of it.

It is what makes a crash harmless. Before a request leaves, the row is written ``pending``
with its idempotency key (``intend``, committed at once); after a final answer its outcome is
written ``done``, or ``failed`` when Kirim refused the create for good (``record``, committed
in small batches). A rerun then knows, per phone:

- ``done``: not sent again. In the run that did it, it keeps its outcome; in a later run it is
  ``exists``, without spending write budget (``--on-existing update`` still checks it).
- ``pending``: may or may not have reached Kirim. In ``create`` mode it is re-sent with the
  same key, so Kirim replays instead of creating; but when the key may have expired (24 h),
  or the row was pending or done under another key (``needs_lookup``, kept until a final
  answer), the phone is looked up first. In ``skip``/``update`` mode it is always looked up.
- ``failed``, or absent: nothing was created by us; sent as new.

Entries are keyed by (organisation, account, E.164 phone), so runs against other servers,
organisations or accounts never mix. WAL mode with ``synchronous=FULL``: every commit is on
disk before it returns, so neither a killed process nor a power cut loses an intent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

KEY_TTL_S = 23 * 3600  # Kirim keeps keys 24 h; an hour of margin for clock skew

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL, org TEXT NOT NULL, account TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL
);
CREATE TABLE IF NOT EXISTS contacts (
    org TEXT NOT NULL, account TEXT NOT NULL, phone TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    idem_key TEXT NOT NULL, sent_at REAL NOT NULL, run_id INTEGER NOT NULL,
    outcome TEXT, contact_id TEXT, http_status INTEGER, error_code TEXT,
    request_id TEXT, updated_at REAL NOT NULL,
    needs_lookup INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org, account, phone)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Entry:
    phone: str
    state: str
    idem_key: str
    sent_at: float
    run_id: int
    outcome: str | None
    contact_id: str | None
    request_id: str | None
    needs_lookup: bool  # it may exist under an older key: only a lookup can tell


@dataclass(frozen=True, slots=True)
class Outcome:
    phone: str
    state: str  # done | failed
    outcome: str | None  # created | updated | exists, for done
    contact_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    request_id: str | None = None


class Journal:
    def __init__(
        self,
        path: Path,
        *,
        org: str,
        account: str,
        clock: Callable[[], float] = time.time,
        flush_every: int = 500,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an intent must survive a power cut
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(contacts)")}
        if "needs_lookup" not in columns:  # a journal written by 0.1.0 before this column
            self._db.execute(
                "ALTER TABLE contacts ADD COLUMN needs_lookup INTEGER NOT NULL DEFAULT 0"
            )
        self._org = org
        self._account = account
        self._clock = clock
        self._flush_every = flush_every
        self._buffer: list[Outcome] = []
        self._buffered: set[str] = set()  # the phones in _buffer
        self.run_id = 0
        self.resumed = False

    def now(self) -> float:
        """The journal's clock (wall time: key ages are compared across runs)."""
        return self._clock()

    def start_run(self, *, fingerprint: str) -> int:
        """Resume the unfinished run of this same import, or begin a new one."""
        row = self._db.execute(
            "SELECT run_id FROM runs WHERE fingerprint=? AND org=? AND account=? "
            "AND finished_at IS NULL ORDER BY run_id DESC LIMIT 1",
            (fingerprint, self._org, self._account),
        ).fetchone()
        if row is not None:
            self.run_id, self.resumed = int(row[0]), True
        else:
            cur = self._db.execute(
                "INSERT INTO runs (fingerprint, org, account, started_at) VALUES (?, ?, ?, ?)",
                (fingerprint, self._org, self._account, self._clock()),
            )
            self.run_id, self.resumed = int(cur.lastrowid or 0), False
        return self.run_id

    def finish_run(self) -> None:
        self.flush()
        self._db.execute(
            "UPDATE runs SET finished_at=? WHERE run_id=?", (self._clock(), self.run_id)
        )

    def entries(self, phones: Sequence[str]) -> dict[str, Entry]:
        """The journal's entries for these phones (any state), by phone."""
        if not self._buffered.isdisjoint(phones):  # an outcome still buffered is newer
            self.flush()
        found: dict[str, Entry] = {}
        for start in range(0, len(phones), 500):
            chunk = phones[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = (  # only "?" marks are formatted in
                "SELECT phone, state, idem_key, sent_at, run_id, outcome, contact_id, request_id,"
                f" needs_lookup FROM contacts WHERE org=? AND account=? AND phone IN ({marks})"
            )
            rows = self._db.execute(query, (self._org, self._account, *chunk))
            for r in rows:
                found[r[0]] = Entry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]))
        return found

    def intend(self, items: Iterable[tuple[str, str]]) -> None:
        """Mark (phone, key) pairs as about to be sent; durable before this returns.

        A phone already pending under the same key keeps its first ``sent_at``: the key's
        age on the server counts from its first use. One pending under another key (the row
        was edited), or already done, is marked ``needs_lookup``: it may exist under a key
        this row no longer has, and that fact survives until a final answer is recorded.
        """
        now = self._clock()
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO contacts"
            " (org, account, phone, state, idem_key, sent_at, run_id, updated_at)"
            " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?) ON CONFLICT (org, account, phone) DO UPDATE"
            " SET state='pending', run_id=excluded.run_id, updated_at=excluded.updated_at,"
            " sent_at=CASE WHEN idem_key=excluded.idem_key AND state='pending'"
            "              THEN sent_at ELSE excluded.sent_at END,"
            " needs_lookup=CASE WHEN state='done'"
            "                   OR (state='pending' AND idem_key!=excluded.idem_key)"
            "              THEN 1 ELSE needs_lookup END,"
            " idem_key=excluded.idem_key",
            [(self._org, self._account, p, k, now, self.run_id, now) for p, k in items],
        )
        self._db.execute("COMMIT")

    def record(self, outcome: Outcome) -> None:
        """Note a row's final answer; written with the next batch."""
        self._buffer.append(outcome)
        self._buffered.add(outcome.phone)
        if len(self._buffer) >= self._flush_every:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        now = self._clock()
        rows = [
            (
                o.state,
                o.outcome,
                o.contact_id,
                o.http_status,
                o.error_code,
                o.request_id,
                now,
                self._org,
                self._account,
                o.phone,
            )
            for o in self._buffer
        ]
        self._db.execute("BEGIN")
        self._db.executemany(
            "UPDATE contacts SET state=?, outcome=?, contact_id=?, http_status=?, error_code=?,"
            " request_id=?, updated_at=?, needs_lookup=0 WHERE org=? AND account=? AND phone=?",
            rows,
        )
        self._db.execute("COMMIT")
        self._buffer.clear()
        self._buffered.clear()

    def close(self) -> None:
        self.flush()
        self._db.close()
