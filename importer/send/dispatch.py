"""The work queue of a run: validated batches in, one job per row to the workers, finished
batches out in input order.

Each row is triaged by ``decide``: rows that need no request are settled on the spot (``done``
in the journal: this run's outcome, or ``exists`` from an earlier run), as are rows past
``--limit`` and every row after a stop. The others are journalled ``pending`` in one commit per
chunk of ``INTENT_CHUNK``, then queued. A batch is handed to ``on_batch`` when its last row
settles, and only after every batch before it (to ``on_finished``: the labels step when a
run attaches labels, else straight to the report), so the report keeps the input's order while
memory holds just the batches in flight. The ``Listener`` (the pipeline's: progress, log and
report) hears of every row as it settles and of every finished batch.

In a file with an account column (``routed``), each row goes to the account validation gave
it: its idempotency key, journal entry and requests are that account's (``Upserter.
for_account``), under the organisation's one pair of buckets. A chunk's intents are still one
commit, whatever the number of accounts.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Protocol

import polars as pl

from importer.errors import JournalError
from importer.options import RunOptions
from importer.records import VALIDATED_SCHEMA, Status, ValidatedBatch
from importer.redact import redact
from importer.send.client import idempotency_key
from importer.send.decide import Action, decide
from importer.send.journal import Journal
from importer.send.labelling import Finished
from importer.send.records import Entry, RowResult
from importer.send.renumber import cell_key
from importer.send.stop import Stop, Why
from importer.send.upsert import Job, Upserter, body_fingerprint, make_body

_SEND_COLUMNS = ("row_number", "phone_number", "name", "email", "metadata")
INTENT_CHUNK = 256  # rows journalled per commit, just before they are queued
_QUIET = frozenset({"not_attempted", "limit_reached", "interrupted"})  # summed up at the end



class Listener(Protocol):
    def rows_settled(self, status: str, n: int) -> None:
        """``n`` rows ended in ``status`` (invalid and duplicate rows too, a batch at once)."""

    def row_failed(self, result: RowResult, phone: str) -> None:
        """A row that was sent failed."""

    def batch_done(
        self, rows: pl.DataFrame, original: pl.DataFrame, results: Sequence[RowResult]
    ) -> None:
        """A batch, in input order, with what became of its rows that reached this stage."""


@dataclass
class _InFlight(Finished):
    waiting: int = 0  # its rows not settled yet


def not_sent(row: int, code: str, message: str) -> RowResult:
    return RowResult(row, Status.FAILED, error_code=code, error_message=message, retryable=True)


def _stopped_first(row: int) -> RowResult:
    return not_sent(row, "not_attempted", "the run stopped first")


class Dispatcher:
    """One ``run``'s queue and the batches in flight; ``stop`` says when to take no more."""

    def __init__(
        self,
        *,
        options: RunOptions,
        concurrency: int,
        account: str,
        run_id: int,
        stop: Stop,
        journal: Journal,
        upserter: Upserter,
        listener: Listener,
        on_finished: Callable[[Finished], None] | None = None,
        routed: bool = False,
    ) -> None:
        self.options = options
        self._routed = routed  # rows name their account (validation's ``account`` column)
        self.concurrency = concurrency
        self._account = account
        self._run_id = run_id
        self._stop = stop
        self._journal = journal
        self._upserter = upserter
        self._listener = listener
        self._on_finished = on_finished or self._report
        self.queue: asyncio.Queue[tuple[Job, _InFlight] | None] = asyncio.Queue(
            maxsize=concurrency * 2
        )
        self._inflight: list[_InFlight] = []
        self._queued_rows = 0  # rows given a request so far (what --limit counts)
        self.last_row = 0  # the last row number fed in

    def _settle(self, state: _InFlight, result: RowResult, phone: str = "") -> None:
        state.results.append(result)
        state.waiting -= 1
        if result.status is Status.FAILED and result.error_code not in _QUIET:
            self._listener.row_failed(result, phone)
        self._listener.rows_settled(result.status.value, 1)
        self._drain()

    def _drain(self) -> None:
        while self._inflight and self._inflight[0].waiting == 0:
            self._on_finished(self._inflight.pop(0))

    def _report(self, done: Finished) -> None:
        self._listener.batch_done(done.batch.rows, done.batch.original, done.results)

    async def worker(self) -> None:
        while (item := await self.queue.get()) is not None:
            job, state = item
            if self._stop.requested:
                self._settle(state, _stopped_first(job.row_number))
                continue
            try:
                upserter = self._upserter
                if job.account is not None:
                    upserter = upserter.for_account(job.account)
                result = await upserter.handle(job)
            except asyncio.CancelledError:
                message = "in flight when the run was stopped"
                self._settle(state, not_sent(job.row_number, "interrupted", message))
                raise
            except JournalError as exc:  # the intent of its create could not be kept
                self._stop.request(Why.JOURNAL, str(exc))
                result = _stopped_first(job.row_number)
            except Exception as exc:  # a bug of ours: this row stays pending, the run stops
                why = f"internal error: {type(exc).__name__}: {redact(str(exc))}"
                self._stop.request(Why.INTERNAL, why)
                result = not_sent(job.row_number, "internal_error", why)
            self._settle(state, result, job.phone)

    def settle_queued(self) -> None:
        """After the workers are gone: rows still queued were never sent."""
        while not self.queue.empty():
            if (item := self.queue.get_nowait()) is not None:
                job, state = item
                self._settle(state, _stopped_first(job.row_number))

    def _triage(
        self,
        state: _InFlight,
        rows: list[tuple[Any, ...]],
        accounts: Iterable[str],
        entries: dict[str, dict[str, Entry]],
    ) -> list[Job]:
        """Settle the rows that need no request; return jobs for the others. ``accounts``:
        each row's; ``entries``: the journal's, by account and phone."""
        now, mode, limit = self._journal.now(), self.options.on_existing, self.options.limit
        routed = self._routed
        jobs: list[Job] = []
        for (row, phone, name, email, meta), account in zip(rows, accounts, strict=False):
            body = make_body(phone=phone, name=name, email=email, metadata=meta)
            key = idempotency_key(account=account, body=body)
            entry = entries[account].get(phone)
            if entry is not None and entry.labels:  # (on the journal's contact only)
                state.known[row] = (entry.contact_id, entry.labels)
            decision = decide(
                entry=entry,
                key=key,
                body_hash=body_fingerprint(body),
                mode=mode,
                now=now,
                run_id=self._run_id,
                verify=self.options.verify,
            )
            if decision.action is Action.SETTLED and decision.status is not None:
                contact_id = entry.contact_id if entry else None
                request_id = entry.request_id if entry else None
                result = RowResult(
                    row, decision.status, contact_id=contact_id, request_id=request_id
                )
                self._settle(state, result)
            elif self._stop.requested:
                self._settle(state, _stopped_first(row))
            elif limit is not None and self._queued_rows >= limit:
                self._settle(state, not_sent(row, "limit_reached", f"not sent: --limit {limit}"))
            else:
                contact_id = entry.contact_id if entry else None
                # a create of ours that no answer confirmed (a killed invocation's, or a run's
                # whose answers were lost): found now, it is ours, never reported created yet
                ours = entry is not None and entry.state == "pending" and bool(entry.create_run)
                jobs.append(
                    Job(row, phone, body, key, decision.action, contact_id, ours,
                        account if routed else None)
                )  # fmt: skip
                self._queued_rows += 1
        return jobs

    async def feed(self, batches: Iterator[ValidatedBatch]) -> None:
        """Queue every valid row, a chunk at a time; after a stop, read no further batch."""
        while not self._stop.requested:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                break
            state = _InFlight(batch)
            self._inflight.append(state)
            if isinstance(last := batch.rows["row_number"].max(), int):
                self.last_row = last
            valid = batch.rows.filter(pl.col("status") == Status.VALID.value)
            skipped = batch.rows.filter(pl.col("status") != Status.VALID.value)
            for status, n in skipped.group_by("status").len().iter_rows():
                self._listener.rows_settled(status, n)
            rows = list(valid.select(*_SEND_COLUMNS).iter_rows())
            cells = valid.select(cell_key()).to_series().to_list()
            accounts = valid["account"].to_list() if self._routed else None
            state.waiting = len(rows)
            for start in range(0, len(rows), INTENT_CHUNK):
                chunk = slice(start, start + INTENT_CHUNK)
                chunk_accounts = None if accounts is None else accounts[chunk]
                for job in await self._journalled(state, rows[chunk], cells[chunk], chunk_accounts):
                    await self.queue.put((job, state))
            self._drain()

    async def _journalled(
        self,
        state: _InFlight,
        rows: list[tuple[Any, ...]],
        cells: list[str],
        accounts: list[str] | None = None,
    ) -> list[Job]:
        """Triage a chunk and journal its jobs ``pending``, one commit, before they are
        queued, with the phone cell each is sent as; the cells of rows the journal holds
        ``done`` are noted too (``renumber``). ``accounts``: each row's (a file with an
        account column), else every row is the run's. If the journal fails, the run stops
        and these rows are not sent."""
        jobs: list[Job] | None = None
        try:
            if accounts is not None:
                by_account = await self._entries(rows, accounts)
                jobs = self._triage(state, rows, accounts, by_account)
                await self._intend_accounts(jobs, rows, cells, accounts, by_account)
                return jobs
            entries = await self._journal.entries([r[1] for r in rows])
            jobs = self._triage(state, rows, repeat(self._account), {self._account: entries})
            cell = {r[0]: c for r, c in zip(rows, cells, strict=True)}
            if jobs:
                sent = [(cell[j.row_number], j.phone) for j in jobs]
                await self._journal.intend(
                    ((j.phone, j.key, j.action is Action.CREATE) for j in jobs), sent
                )
            queued = {j.row_number for j in jobs}
            self._journal.remember(
                (cell[r[0]], r[1])
                for r in rows
                if r[0] not in queued and (e := entries.get(r[1])) is not None and e.state == "done"
            )
            return jobs
        except JournalError as exc:
            self._stop.request(Why.JOURNAL, str(exc))
            unsent = [r[0] for r in rows] if jobs is None else [j.row_number for j in jobs]
            for row in unsent:  # (rows triage settled are settled already)
                self._settle(state, _stopped_first(row))
            return []

    async def _entries(
        self, rows: list[tuple[Any, ...]], accounts: list[str]
    ) -> dict[str, dict[str, Entry]]:
        """The journal's entries of a chunk whose rows name their accounts, by account."""
        phones: dict[str, list[str]] = defaultdict(list)
        for r, account in zip(rows, accounts, strict=True):
            phones[account].append(r[1])
        return {
            account: await self._journal.entries(some, account=account)
            for account, some in phones.items()
        }

    async def _intend_accounts(
        self,
        jobs: list[Job],
        rows: list[tuple[Any, ...]],
        cells: list[str],
        accounts: list[str],
        entries: dict[str, dict[str, Entry]],
    ) -> None:
        """``_journalled``'s intents and cells for rows that name their accounts: the
        intents of every account in one commit."""
        cell = {r[0]: c for r, c in zip(rows, cells, strict=True)}
        if jobs:
            intents: dict[str, tuple[list[tuple[str, str, bool]], list[tuple[str, str]]]] = {}
            for j in jobs:
                items, sent = intents.setdefault(j.account or self._account, ([], []))
                items.append((j.phone, j.key, j.action is Action.CREATE))
                sent.append((cell[j.row_number], j.phone))
            await self._journal.intend_accounts(intents)
        queued = {j.row_number for j in jobs}
        done: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for r, account in zip(rows, accounts, strict=True):
            entry = entries[account].get(r[1])
            if r[0] not in queued and entry is not None and entry.state == "done":
                done[account].append((cell[r[0]], r[1]))
        for account, pairs in done.items():
            self._journal.remember(pairs, account=account)

    def unread(self, raw: Iterable[pl.DataFrame], *, phone_column: str) -> None:
        """After a stop: every row never read gets its status, cheaply, from the raw file."""
        for rows, original in unread_batches(raw, after=self.last_row, phone_column=phone_column):
            self._listener.batch_done(rows, original, ())
            self._listener.rows_settled(Status.FAILED.value, rows.height)


def unread_batches(
    raw: Iterable[pl.DataFrame], *, after: int, phone_column: str
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """(rows, original) for every raw row past row ``after``: ``failed`` / ``not_attempted``,
    straight from the file, without validating it."""
    for frame in raw:
        rest = frame.filter(pl.col("row_number") > after)
        if rest.height == 0:
            continue
        rows = (
            pl.DataFrame({"row_number": rest["row_number"]})
            .with_columns(
                pl.lit(None, dtype).alias(name)
                for name, dtype in VALIDATED_SCHEMA.items()
                if name != "row_number"
            )
            .with_columns(
                pl.lit(Status.FAILED.value).alias("status"),
                pl.lit("not_attempted").alias("error_code"),
                pl.lit("the run stopped before this row was read").alias("error_message"),
                rest[phone_column].alias("raw_phone"),
            )
        )
        yield rows, rest.drop("row_number")
