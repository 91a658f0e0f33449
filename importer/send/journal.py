"""The journal: a SQLite record of every contact we meant to create and what became of it.

It is what makes a crash harmless. Before a request leaves, the row is written ``pending``
with its idempotency key (``intend``, committed at once); after a final answer its outcome is
written ``done``, or ``failed`` when Kirim refused the create for good (``record``, committed
in small batches). A rerun then knows, per phone:

- ``done``: not sent again. In the run that did it, it keeps its outcome; in a later run it is
  ``exists``, without spending write budget (``--on-existing update`` still checks it).
- ``pending``: may or may not have reached Kirim. In ``create`` mode it is re-sent with the
  same key, so Kirim replays instead of creating; but when the key may have expired (23 h),
  or the row was pending or done under another key (``needs_lookup``, kept until a final
  answer), the phone is looked up first. In ``skip``/``update`` mode it is always looked up.
- ``failed``, or absent: nothing was created by us; sent as new.

``create_run`` names the run that last sent a create for the phone (``intend`` for a create
without a lookup; ``creating``, group-committed, before a create that follows a lookup): a
run resumed after a kill knows which contacts its killed invocation made, and reports them
``created``, not ``exists``.

Entries are keyed by (organisation, account, E.164 phone), so runs against other servers,
organisations or accounts never mix. A journal is opened for one organisation and account;
every call that names phones also takes ``account=`` (a file with an account column sends
rows to several accounts of the organisation in one run), and an ``Outcome`` names its own.
Beside them, ``cells`` keeps which number each phone cell was sent as (with the intent, in its
commit; cells of rows already ``done``, ``remember``, in batches), so a run that reads a cell
as another number can tell (``send.renumber``).

WAL mode with ``synchronous=FULL``: every commit is on disk before it returns, so neither a
killed process nor a power cut loses an intent.

All SQLite work runs on one thread of the journal's own, in the order it was asked for, so
the event loop goes on sending while a commit waits for the disk: ``intend`` and ``entries``
are awaited (an intent is durable before its request leaves), a batch of outcomes is not. The
first failure is final: it is passed to ``on_failure`` (the run's stop), nothing queued
behind it runs, and every later call raises it as ``JournalError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from importer.errors import JournalError
from importer.private import FILE_MODE, private_file, private_folder
from importer.send.records import Entry, Outcome, RunLine, RunRecord

# A rowid table: rows sit in the order they were intended, so the outcomes of a batch
# rewrite a few adjacent pages instead of one random page each. (Journals made by 0.1.0
# have the same columns WITHOUT ROWID, keyed the same way; every statement works on both.)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL, org TEXT NOT NULL, account TEXT NOT NULL,
    started_at REAL NOT NULL, finished_at REAL
);
CREATE TABLE IF NOT EXISTS invocations (
    run_id INTEGER NOT NULL, ended_at REAL NOT NULL, requests INTEGER, http_429 INTEGER,
    retries INTEGER, elapsed_s REAL, exit_code INTEGER, stopped TEXT, report_dir TEXT
);
CREATE TABLE IF NOT EXISTS contacts (
    org TEXT NOT NULL, account TEXT NOT NULL, phone TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    idem_key TEXT NOT NULL, sent_at REAL NOT NULL, run_id INTEGER NOT NULL,
    outcome TEXT, contact_id TEXT, http_status INTEGER, error_code TEXT,
    request_id TEXT, updated_at REAL NOT NULL,
    needs_lookup INTEGER NOT NULL DEFAULT 0,
    body_hash TEXT, labels TEXT, create_run INTEGER,
    UNIQUE (org, account, phone)
);
CREATE TABLE IF NOT EXISTS cells (
    org TEXT NOT NULL, account TEXT NOT NULL, cell TEXT NOT NULL,
    phone TEXT NOT NULL, reading TEXT NOT NULL,
    PRIMARY KEY (org, account, cell)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS synced (
    org TEXT NOT NULL, account TEXT NOT NULL, source TEXT NOT NULL, label TEXT NOT NULL,
    phone TEXT NOT NULL, contact_id TEXT NOT NULL,
    PRIMARY KEY (org, account, source, label, phone)
) WITHOUT ROWID;
"""
# ``synced`` (0.5.0; a journal without it gains it, empty, when a run opens it): which
# contacts this journal put a ``--sync-label`` on, per label and source (``mirror``):
# only those are ever detached, when their phone has left that source.
_SYNCED = (
    "INSERT INTO synced (org, account, source, label, phone, contact_id) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (org, account, source, label, phone) DO UPDATE SET"
    " contact_id=excluded.contact_id WHERE contact_id!=excluded.contact_id"
)
_UNSYNCED = "DELETE FROM synced WHERE org=? AND account=? AND source=? AND label=? AND phone=?"
_LABEL_GONE = (  # the label id is off the phone's contact: a later attach is needed again
    "UPDATE contacts SET labels=(SELECT json_group_array(value) FROM (SELECT value FROM"
    " json_each(contacts.labels) WHERE value!=?1 ORDER BY value))"
    " WHERE org=?2 AND account=?3 AND phone=?4 AND labels IS NOT NULL"
)
# A contact read from the account's pages (``run --adopt``, ``send.adopt``): ``done`` with
# Kirim's id and the fingerprint of the body Kirim holds, so update mode sends nothing for
# a row with that very body. A pending entry stays as it is (only a lookup can settle it);
# run 0 is no run, so a row is reported ``unchanged``/``exists``, never ``created``.
_ADOPT = (
    "INSERT INTO contacts (org, account, phone, state, idem_key, sent_at, run_id, outcome,"
    " contact_id, updated_at, body_hash) VALUES (?, ?, ?, 'done', '', ?, 0, 'exists', ?, ?, ?)"
    " ON CONFLICT (org, account, phone) DO UPDATE SET state='done',"
    " outcome=COALESCE(outcome, 'exists'),"
    " labels=CASE WHEN contact_id IS excluded.contact_id THEN labels END,"
    " contact_id=excluded.contact_id, body_hash=excluded.body_hash, needs_lookup=0,"
    " updated_at=excluded.updated_at WHERE state!='pending'"
)
# ``cells`` (after 0.3.0; a journal without it gains it, empty, when a run opens it): which
# E.164 number each phone cell (its ``phone_key``: the cell as read, separators dropped) was
# sent as, and how it was read then (``reading``: the default region and the parsers'
# versions), so a run that reads a cell as another number can tell (``send.renumber``).
# One statement for a batch of (cell, phone) pairs given as one JSON array: SQLite walks them
# with the GIL let go, rather than Python binding each row. A pair is rewritten only when its
# number or the reading changed, so a night like the one before writes no page.
_CELLS = (
    "INSERT INTO cells (org, account, cell, phone, reading)"
    " SELECT ?, ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), ?"
    " FROM json_each(?) WHERE true"
    " ON CONFLICT (org, account, cell) DO UPDATE SET phone=excluded.phone,"
    " reading=excluded.reading WHERE phone!=excluded.phone OR reading!=excluded.reading"
)
# Cells of rows settled without a request are written this many at a time, each batch queued
# just behind a lookup of entries (``entries``): it runs while the caller works on the answer.
_CELLS_FLUSH = 1_024
_CELLS_HELD = 50_000  # past this many waiting, written at once whatever asks
# Columns later versions added, for journals written before them (ALTER TABLE ... ADD COLUMN).
_ADDED = {
    "needs_lookup": "INTEGER NOT NULL DEFAULT 0",  # 0.1.0
    "body_hash": "TEXT",  # 0.3.0: the night after an upgrade from 0.2.0 looks rows up once
    "labels": "TEXT",  # 0.3.0
    "create_run": "INTEGER",  # 0.4.0
}
_INTEND = (
    "INSERT INTO contacts"
    " (org, account, phone, state, idem_key, sent_at, run_id, updated_at, create_run)"
    " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?) ON CONFLICT (org, account, phone) DO UPDATE"
    " SET state='pending', run_id=excluded.run_id, updated_at=excluded.updated_at,"
    " create_run=COALESCE(excluded.create_run, create_run),"
    " sent_at=CASE WHEN idem_key=excluded.idem_key AND state='pending'"
    "              THEN sent_at ELSE excluded.sent_at END,"
    " needs_lookup=CASE WHEN state='done' OR (state='pending' AND idem_key!=excluded.idem_key)"
    "              THEN 1 ELSE needs_lookup END,"
    " idem_key=excluded.idem_key"
)
_RECORD = (  # a pending "outcome" keeps what the journal knew, and asks for a lookup; the
    # labels belong to the contact they were attached to; a refused create sent nothing
    "UPDATE contacts SET state=?, outcome=?,"
    " labels=CASE WHEN ?1='pending' OR contact_id IS NULL OR ?3 IS contact_id THEN labels END,"
    " contact_id=CASE WHEN ?1='pending' THEN contact_id ELSE ?3 END, http_status=?,"
    " error_code=?, request_id=?, updated_at=?, needs_lookup=(?1='pending'),"
    " body_hash=CASE WHEN ?1='pending' THEN body_hash ELSE ?8 END,"
    " create_run=CASE WHEN ?1='failed' THEN NULL ELSE create_run END"
    " WHERE org=? AND account=? AND phone=?"
)
_CREATING = (  # a create is about to leave under this key (a new one: a lookup goes first)
    "UPDATE contacts SET create_run=?, updated_at=?,"
    " needs_lookup=CASE WHEN idem_key!=?3 THEN 1 ELSE needs_lookup END,"
    " sent_at=CASE WHEN idem_key!=?3 THEN ?2 ELSE sent_at END, idem_key=?3"
    " WHERE org=? AND account=? AND phone=?"
)
_LABELLED = (  # label ids attached, added to what the phone's contact had
    "UPDATE contacts SET labels=? WHERE org=? AND account=? AND phone=?"
)
_DELETED_IN_KIRIM = (  # its contact is gone: nothing the entry said of one holds any more
    "UPDATE contacts SET state='pending', needs_lookup=1, outcome=NULL, contact_id=NULL,"
    " body_hash=NULL, labels=NULL, updated_at=? WHERE org=? AND account=? AND phone=?"
)
_ENTRIES = (  # only "?" marks are formatted in
    "SELECT phone, state, idem_key, sent_at, run_id, outcome, contact_id, request_id,"
    " needs_lookup, body_hash, labels, create_run FROM contacts"
    " WHERE org=? AND account=? AND phone IN ({marks})"
)
# How a run ended, for `kirim-import history` (``save_run``, ``runs``): added to the runs table
# of any journal that lacks them (0.2.0 kept none), so old runs show what they have.
_RUN_COLUMNS = {
    "file": "TEXT", "mode": "TEXT", "counts": "TEXT", "requests": "INTEGER",
    "http_429": "INTEGER", "retries": "INTEGER", "elapsed_s": "REAL", "exit_code": "INTEGER",
    "report_dir": "TEXT", "stopped": "TEXT", "ended_at": "REAL",
}  # fmt: skip

T = TypeVar("T")
_Step = tuple[str, list[tuple[Any, ...]]]
_Intent = tuple[str, str, bool]  # (phone, idempotency key, a create without a lookup first)


class Journal:
    def __init__(
        self,
        path: Path,
        *,
        org: str,
        account: str,
        clock: Callable[[], float] = time.time,
        flush_every: int = 500,
        busy_timeout_s: float = 5.0,
        on_failure: Callable[[str], None] | None = None,
        reading: str = "",
    ) -> None:
        self.path = path
        self._org = org
        self._account = account
        self._reading = reading  # how this run reads phone cells (``renumber.reading``)
        self._cells: dict[str, list[tuple[str, str]]] = {}  # account -> (cell, phone) pairs
        self._held = 0  # cells waiting in ``_cells``
        self._clock = clock
        self._flush_every = flush_every
        self._buffer: list[Outcome] = []
        self._creating: list[tuple[Any, ...]] = []  # marks waiting for the next group commit
        self._creating_done: Future[None] | None = None
        self._creating_lock = threading.Lock()
        self._flushes: list[Future[None]] = []
        self._failure: JournalError | None = None
        self._on_failure = on_failure
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._closed = False
        self.run_id = 0
        self.resumed = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        try:
            self._db = self._wait(self._open, busy_timeout_s)
        except BaseException:
            self._thread.shutdown()
            raise

    # --- on the journal's thread ----------------------------------------------------------

    def _guard(self, work: Callable[..., T], *args: Any) -> T:
        if self._failure is not None:  # one failure is enough: nothing queued behind it runs
            raise JournalError(str(self._failure))
        try:
            return work(*args)
        except Exception as exc:  # a value SQLite cannot bind fails here too
            raise self._fail(exc) from None

    def _fail(self, exc: BaseException) -> JournalError:
        """Note the journal's first failure; every later call raises it."""
        what = str(exc) if isinstance(exc, sqlite3.Error) else repr(exc)
        failure = (
            exc
            if isinstance(exc, JournalError)
            else JournalError(f"the journal {self.path}: {what}")
        )
        if self._failure is None:
            self._failure = failure
            if self._on_failure is not None:
                if self._loop is None or self._loop.is_closed():
                    self._on_failure(str(failure))
                else:  # on the journal's thread: the handler runs on the event loop
                    self._loop.call_soon_threadsafe(self._on_failure, str(failure))
        return failure

    def _open(self, busy_timeout_s: float) -> sqlite3.Connection:
        try:  # personal data: the folder 0700 when we make it, the file and its -wal/-shm 0600
            private_folder(self.path.parent)
            private_file(self.path)
        except OSError as exc:
            raise JournalError(f"the journal {self.path}: {exc.strerror or exc}") from None
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an intent must survive a power cut
            db.executescript(_SCHEMA)
            for suffix in ("-wal", "-shm"):  # SQLite gives them the file's mode; older ones too
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.chmod(side, FILE_MODE)
            columns = {r[1] for r in db.execute("PRAGMA table_info(contacts)")}
            for name, kind in _ADDED.items():
                if name not in columns:
                    db.execute(f"ALTER TABLE contacts ADD COLUMN {name} {kind}")
            if "create_run" not in columns:  # from 0.3.0, whose ids came from answers not
                # checked against the row: each is looked up once before any PATCH goes to it
                db.execute("UPDATE contacts SET body_hash=NULL")
            have = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
            for name, kind in _RUN_COLUMNS.items():
                if name not in have:  # a new journal, or one from 0.2.0: the runs' records
                    db.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        except BaseException:
            db.close()
            raise
        return db

    def _write(self, sql: str, rows: list[tuple[Any, ...]], *more: _Step) -> None:
        """``sql`` over ``rows``, then each further (sql, rows) step: one transaction."""
        self._db.execute("BEGIN")
        try:
            for step_sql, step_rows in ((sql, rows), *more):
                self._db.executemany(step_sql, step_rows)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _select(self, phones: list[str], account: str) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        for start in range(0, len(phones), 500):
            chunk = phones[start : start + 500]
            query = _ENTRIES.format(marks=",".join("?" * len(chunk)))
            for r in self._db.execute(query, (self._org, account, *chunk)):
                labels = frozenset(json.loads(r[10])) if r[10] else frozenset()
                found[r[0]] = Entry(
                    r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), r[9], labels,
                    r[11],
                )  # fmt: skip
        return found

    def _start(self, fingerprint: str) -> None:
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

    # --- from the event loop ----------------------------------------------------------------

    def _submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        if self._closed:
            raise JournalError(f"the journal {self.path} is closed")
        return self._thread.submit(self._guard, work, *args)

    def _wait(self, work: Callable[..., T], *args: Any) -> T:
        return self._submit(work, *args).result()

    async def _await(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._submit(work, *args))

    def now(self) -> float:
        """The journal's clock (wall time: key ages are compared across runs)."""
        return self._clock()

    def start_run(self, *, fingerprint: str) -> int:
        """Resume the unfinished run of this same import, or begin a new one (if that fails,
        the journal is closed)."""
        try:
            self._wait(self._start, fingerprint)
        except BaseException:
            with contextlib.suppress(JournalError):
                self.close()
            raise
        return self.run_id

    async def entries(
        self, phones: Sequence[str], *, account: str | None = None
    ) -> dict[str, Entry]:
        """The journal's entries for these phones (any state) of ``account`` (default: the
        journal's), by phone."""
        wanted = set(phones)
        if any(o.phone in wanted for o in self._buffer):  # an outcome still buffered is newer
            self._flush_soon()
        found = self._submit(self._select, list(phones), account or self._account)
        if self._held >= _CELLS_FLUSH:
            self._flush_cells()
        return await asyncio.wrap_future(found)

    async def intend(
        self,
        items: Iterable[tuple[str, str, bool]],
        cells: Iterable[tuple[str, str]] = (),
        *,
        account: str | None = None,
    ) -> None:
        """Mark (phone, key, create) as about to be sent (``create``: a create without a
        lookup first), and note the (cell, phone) pairs of their rows (``remember``), in one
        commit; durable when this returns.

        A phone already pending under the same key keeps its first ``sent_at``: the key's
        age on the server counts from its first use. One pending under another key (the row
        was edited), or already done, is marked ``needs_lookup``: it may exist under a key
        this row no longer has, and that fact survives until a final answer is recorded.
        """
        await self.intend_accounts({account or self._account: (items, cells)})

    async def intend_accounts(
        self,
        by_account: Mapping[str, tuple[Iterable[_Intent], Iterable[tuple[str, str]]]],
    ) -> None:
        """``intend`` for the rows of several accounts (account -> (items, cells)), in one
        commit."""
        now, org, run_id = self._clock(), self._org, self.run_id
        rows = [
            (org, account, p, k, now, run_id, now, run_id if c else None)
            for account, (items, _) in by_account.items()
            for p, k, c in items
        ]
        cells = [
            row
            for account, (_, pairs) in by_account.items()
            for row in self._cell_rows(account, list(pairs))
        ]
        await self._await(self._write, _INTEND, rows, (_CELLS, cells))

    def remember(self, cells: Iterable[tuple[str, str]], *, account: str | None = None) -> None:
        """Note which number each phone cell was sent as (rows the journal holds ``done``,
        settled without a request); written a thousand or so at a time, without waiting."""
        held = self._cells.setdefault(account or self._account, [])
        before = len(held)
        held.extend(cells)
        self._held += len(held) - before
        if self._held >= _CELLS_HELD:
            self._flush_cells()

    def _cell_rows(self, account: str, cells: list[tuple[str, str]]) -> list[tuple[Any, ...]]:
        """``_CELLS``'s parameters for these (cell, phone) pairs: none, or one row."""
        if not cells:
            return []
        return [(self._org, account, self._reading, json.dumps(cells))]

    def _flush_cells(self) -> None:
        if not self._held or self._failure is not None:
            return
        rows = [
            r for account, cells in self._cells.items() for r in self._cell_rows(account, cells)
        ]
        self._cells, self._held = {}, 0
        done = self._submit(self._write, _CELLS, rows)
        self._flushes = [f for f in self._flushes if not f.done()] + [done]

    async def creating(self, phone: str, key: str, *, account: str | None = None) -> None:
        """Note that a create for ``phone`` is about to leave under ``key``; durable when this
        returns. Marks that arrive while a commit is under way share the next one (a group
        commit), so the disk sees one commit per round, not one per row."""
        row = (self.run_id, self._clock(), key, self._org, account or self._account, phone)
        with self._creating_lock:
            self._creating.append(row)
            if self._creating_done is None or self._creating_done.done():
                self._creating_done = self._submit(self._commit_creating)
            done = self._creating_done
        # shared by every row of the round: one waiter cancelled must not cancel the commit
        await asyncio.shield(asyncio.wrap_future(done))

    def _commit_creating(self) -> None:
        with self._creating_lock:
            rows, self._creating, self._creating_done = self._creating, [], None
        self._write(_CREATING, rows)

    async def labelled(
        self, items: Iterable[tuple[str, frozenset[str]]], *, account: str | None = None
    ) -> None:
        """Note the label ids each phone's contact now has; durable when this returns. An
        outcome of theirs still buffered is written first (the labels follow the contact)."""
        org, account = self._org, account or self._account
        rows = [(json.dumps(sorted(ids)), org, account, phone) for phone, ids in items]
        if {r[3] for r in rows} & {o.phone for o in self._buffer}:
            self._flush_soon()
        await self._await(self._write, _LABELLED, rows)

    async def deleted_in_kirim(
        self, phones: Iterable[str], *, account: str | None = None
    ) -> None:
        """Kirim no longer has these phones' contacts (deleted there since we journalled them):
        their entries stop claiming one (no contact id, outcome, fingerprint or labels) and are
        left ``pending`` with ``needs_lookup``, so the next run looks each phone up, in every
        ``--on-existing`` mode, and creates it again if it is still gone. An outcome of theirs
        still buffered is written first, so it cannot land on top. Durable when this returns."""
        wanted = set(phones)
        if any(o.phone in wanted for o in self._buffer):
            self._flush_soon()
        now, org, account = self._clock(), self._org, account or self._account
        rows = [(now, org, account, phone) for phone in wanted]
        await self._await(self._write, _DELETED_IN_KIRIM, rows)

    async def synced(self, source: str, label: str, items: Iterable[tuple[str, str]]) -> None:
        """Note that this journal put ``label`` (a ``--sync-label`` name) on these (phone,
        contact id) for ``source``; durable when this returns."""
        org, account = self._org, self._account
        rows = [(org, account, source, label, phone, cid) for phone, cid in items]
        if rows:
            await self._await(self._write, _SYNCED, rows)

    async def unsynced(
        self, source: str, label: str, label_id: str | None, phones: Iterable[str]
    ) -> None:
        """These phones' contacts no longer have ``label`` from ``source`` (detached): they
        leave ``synced``, and the label's id leaves what the journal says their contacts have
        (so a phone that comes back gets it attached again). Durable when this returns."""
        org, account = self._org, self._account
        wanted = sorted(set(phones))
        gone = [(org, account, source, label, phone) for phone in wanted]
        strip = [(label_id, org, account, phone) for phone in wanted] if label_id else []
        await self._await(self._write, _UNSYNCED, gone, (_LABEL_GONE, strip))

    async def adopt(self, contacts: Iterable[tuple[str, str, str]]) -> None:
        """Note (phone, contact id, body fingerprint) of contacts read from the account's
        pages as ``done`` (see ``_ADOPT``); durable when this returns."""
        now, org, account = self._clock(), self._org, self._account
        rows = [(org, account, phone, now, cid, now, digest) for phone, cid, digest in contacts]
        if rows:
            await self._await(self._write, _ADOPT, rows)

    def holds_any(self) -> bool:
        """Whether the journal has any entry for this organisation and account."""

        def look() -> bool:
            query = "SELECT 1 FROM contacts WHERE org=? AND account=? LIMIT 1"
            return self._db.execute(query, (self._org, self._account)).fetchone() is not None

        return self._wait(look)

    def record(self, outcome: Outcome) -> None:
        """Note a row's final answer; written with the next batch, without waiting for it."""
        self._buffer.append(outcome)
        if len(self._buffer) >= self._flush_every:
            self._flush_soon()

    def _flush_soon(self) -> None:
        if not self._buffer or self._failure is not None:
            return
        now, org, account = self._clock(), self._org, self._account
        rows = [
            (o.state, o.outcome, o.contact_id, o.http_status, o.error_code, o.request_id, now,
             o.body_hash, org, o.account or account, o.phone)
            for o in self._buffer
        ]  # fmt: skip
        self._buffer = []
        done = self._submit(self._write, _RECORD, rows)
        self._flushes = [f for f in self._flushes if not f.done()] + [done]

    def flush(self) -> None:
        """Write every outcome (and cell) noted so far; raises ``JournalError`` if any batch
        failed."""
        self._flush_cells()
        self._flush_soon()
        flushes, self._flushes = self._flushes, []
        for done in flushes:
            if (exc := done.exception()) is not None:  # waits for it
                self._fail(exc)
        if self._failure is not None:
            raise JournalError(str(self._failure))

    def close(self) -> None:
        """Write what is buffered and let go of the file. Raises ``JournalError`` if anything
        could not be written; the rows stay ``pending`` then, and a rerun checks them. The
        run is not finished by this: only ``save_run``, once its report is written, finishes
        it (a rerun before then resumes it, and its report counts what this one did)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._thread.submit(self._db.close).result()
            self._thread.shutdown()


# --- read only: the cells a run compares before it sends (``renumber``) -----------------------


def cells_read_otherwise(
    path: Path, *, reading: str, org: str | None = None, account: str | None = None
) -> list[tuple[str, str]]:
    """(cell, phone) for every cell the journal holds that was read otherwise than
    ``reading``: only those can read as another number now. For ``org`` and ``account``, for
    ``org`` alone (every account of it: a file with an account column), or (a plan, which
    knows neither) every organisation's. A journal that does not exist, or
    has no cells yet (one written by 0.3.0 or earlier), holds none. Read only; raises
    ``JournalError``."""
    if not path.is_file():
        return []
    where, args = "reading!=?", [reading]
    if org is not None and account is not None:
        where, args = "org=? AND account=? AND reading!=?", [org, account, reading]
    elif org is not None:
        where, args = "org=? AND reading!=?", [org, reading]
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
        with contextlib.closing(db):
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='cells'").fetchone() is None:
                return []
            query = f"SELECT DISTINCT cell, phone FROM cells WHERE {where}"
            return [(str(c), str(p)) for c, p in db.execute(query, args)]
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {path}: {exc}") from None


# --- a run's record, after the journal is closed ---------------------------------------------


def save_run(
    path: Path,
    *,
    run_id: int,
    record: RunRecord,
    now: float | None = None,
    busy_timeout_s: float = 1.0,
) -> None:
    """Keep how this invocation of run ``run_id`` ended, for ``history``. The run's line
    keeps the last invocation's counts (its report counts every row of the run) and the sums
    of requests, 429s, retries and time over all of them; each invocation's stop reason stays
    in ``invocations``. Its own short connection: the run's journal is closed by then. A
    record is not worth a long wait: if another program holds the journal's write lock past
    ``busy_timeout_s``, it is skipped. Raises ``JournalError``."""
    ended = time.time() if now is None else now
    invocation = (
        run_id, ended, record.requests, record.http_429, record.retries, record.elapsed_s,
        record.exit_code, record.stopped, record.report_dir,
    )  # fmt: skip
    values = (
        record.file, record.mode, json.dumps(dict(record.counts)), record.exit_code,
        record.report_dir, record.stopped, ended, run_id,
    )  # fmt: skip
    try:
        uri = path.resolve().as_uri() + "?mode=rw"
        db = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s)
        with contextlib.closing(db), db:
            db.execute("INSERT INTO invocations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", invocation)
            sums = ", ".join(
                f"{c}=(SELECT SUM({c}) FROM invocations WHERE run_id=runs.run_id)"
                for c in ("requests", "http_429", "retries", "elapsed_s")
            )
            db.execute(
                "UPDATE runs SET file=?, mode=?, counts=?, exit_code=?, report_dir=?, stopped=?,"
                f" ended_at=?, {sums} WHERE run_id=?",
                values,
            )
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {path}: {exc}") from None


def finish_run(path: Path, *, run_id: int, busy_timeout_s: float = 5.0) -> None:
    """Mark run ``run_id`` finished: its report is written and nothing stopped it, so the next
    run of the same file starts a new run instead of resuming this one. Its own short
    connection, with the journal's usual patience (unlike the history record, this matters:
    a finished run left open would be resumed by tomorrow's). Raises ``JournalError``."""
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True, timeout=busy_timeout_s)
        with contextlib.closing(db), db:
            db.execute("UPDATE runs SET finished_at=? WHERE run_id=?", (time.time(), run_id))
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {path}: {exc}") from None


def runs(path: Path) -> list[RunLine]:
    """Every run the journal holds, newest first, read only; a column the journal lacks (one
    from 0.2.0) reads as missing. Raises ``JournalError``."""
    if not path.is_file():
        raise JournalError(
            f"no journal at {path} (a --sandbox run keeps its own in its report folder: "
            "--state reports/<folder>/journal.sqlite)"
        )
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
        with contextlib.closing(db):
            have = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
            if not have:
                raise JournalError(f"{path} is not a kirim-import journal (no runs table)")
            wanted = ("run_id", "org", "account", "started_at", "finished_at", *_RUN_COLUMNS)
            columns = ", ".join(c if c in have else "NULL" for c in wanted)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            stops = (  # every invocation's stop reason, oldest first ("\x1f"-separated)
                "(SELECT COUNT(*) || char(31) || COALESCE(group_concat(stopped, char(31)), '')"
                " FROM (SELECT stopped FROM invocations i WHERE i.run_id=runs.run_id"
                " ORDER BY ended_at))"
                if "invocations" in tables
                else "NULL"
            )
            query = f"SELECT {columns}, {stops} FROM runs ORDER BY run_id DESC"
            rows = db.execute(query).fetchall()
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {path}: {exc}") from None
    return [_run_line(row) for row in rows]


def _run_line(row: tuple[Any, ...]) -> RunLine:
    run_id, org, account, started, finished = row[:5]
    f = dict(zip(_RUN_COLUMNS, row[5:-1], strict=True))
    invocations, *stops = (row[-1] or "0").split("\x1f")
    record = None
    if f["file"] is not None:
        record = RunRecord(
            file=f["file"], mode=f["mode"], counts=json.loads(f["counts"] or "{}"),
            requests=f["requests"], http_429=f["http_429"], retries=f["retries"],
            elapsed_s=f["elapsed_s"], exit_code=f["exit_code"], report_dir=f["report_dir"],
            stopped=f["stopped"],
        )  # fmt: skip
    return RunLine(
        int(run_id), org, account, started, finished, f["ended_at"], record,
        invocations=int(invocations), stops=tuple(s for s in stops if s),
    )  # fmt: skip


# --- read only: the contacts a --sync-label put its label on (``mirror``) ----------------


def synced_members(
    path: Path, *, source: str, label: str, org: str | None = None, account: str | None = None
) -> dict[str, str]:
    """Phone -> contact id of every contact this journal put ``label`` on for ``source``
    (``Journal.synced``): for ``org`` and ``account``, or (a plan, which knows neither)
    every organisation's. A journal that does not exist, or has no such table yet, holds
    none. Read only; raises ``JournalError``."""
    if not path.is_file():
        return {}
    where, args = "source=? AND label=?", [source, label]
    if org is not None and account is not None:
        where, args = f"org=? AND account=? AND {where}", [org, account, source, label]
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
        with contextlib.closing(db):
            if db.execute("SELECT 1 FROM sqlite_master WHERE name='synced'").fetchone() is None:
                return {}
            query = f"SELECT phone, contact_id FROM synced WHERE {where}"
            return {str(p): str(c) for p, c in db.execute(query, args)}
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {path}: {exc}") from None


def known_phones(path: Path, phones: set[str]) -> int:
    """How many of ``phones`` the journal holds ``done`` (any organisation: a plan knows
    none). Read only; raises ``JournalError``."""
    if not path.is_file() or not phones:
        return 0
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
        with contextlib.closing(db):
            query = "SELECT DISTINCT phone FROM contacts WHERE state='done'"
            return sum(1 for (p,) in db.execute(query) if p in phones)
    except sqlite3.Error as exc:
        raise JournalError(f"the journal {path}: {exc}") from None
