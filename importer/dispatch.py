"""The work queue of a run: planned batches in, one job per row to the workers, finished
batches out to the report in input order.

Rows that need no request are settled on the spot: ``done`` in the journal (this run's
outcome, or ``exists`` from an earlier run), past ``--limit``, or after a stop. The others
are journalled ``pending`` in one commit per chunk of 256, then queued. A batch goes to the
report when its last row settles, and only after every batch before it, so ``results.csv`` keeps
the input's order while memory holds just the batches in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from importer.journal import KEY_TTL_S, Journal
from importer.progress import Progress
from importer.records import (
    PLANNED_SCHEMA,
    Entry,
    JournalError,
    PlannedBatch,
    RunOptions,
    Sent,
    Status,
)
from importer.report import Report
from importer.sender import Sender
from importer.upsert import Job, Upserter, make_body, make_job

_SEND_COLUMNS = ("row_number", "phone_number", "name", "email", "metadata")
_CHUNK = 256  # rows journalled per commit, just before they are queued
_QUIET = frozenset({"not_attempted", "limit_reached", "interrupted"})  # summed up at the end


@dataclass
class BatchState:
    batch: PlannedBatch
    waiting: int = 0
    sent: list[Sent] = field(default_factory=list)


class Dispatcher:
    """The state of one ``run``: the queue, the batches in flight, and why it stopped."""

    def __init__(
        self,
        *,
        options: RunOptions,
        concurrency: int,
        report: Report,
        journal: Journal,
        sender: Sender,
        upserter: Upserter,
        progress: Progress,
    ) -> None:
        self.options = options
        self.concurrency = concurrency
        self.sender = sender
        self.report = report
        self.journal = journal
        self.progress = progress
        self.stopped: str | None = None
        self.upserter = upserter
        self.queue: asyncio.Queue[tuple[Job, BatchState] | None] = asyncio.Queue(
            maxsize=concurrency * 2
        )
        self.inflight: list[BatchState] = []
        self.sent_rows = 0
        self.last_row = 0  # the last row number fed in

    def stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
            self.sender.halt()

    def settle(self, state: BatchState, sent: Sent, phone: str = "") -> None:
        if sent.status is Status.FAILED and sent.error_code not in _QUIET:
            self.progress.logger.warning(
                "row %d %s failed: %s %s (%s)",
                sent.row_number,
                phone,
                sent.http_status or "-",
                sent.error_code,
                sent.error_message,
            )
        state.sent.append(sent)
        state.waiting -= 1
        self.progress.advance(sent.status.value)
        self._drain()

    def _drain(self) -> None:
        while self.inflight and self.inflight[0].waiting == 0:
            done = self.inflight.pop(0)
            self.report.add_batch(
                planned=done.batch.planned, original=done.batch.original, sent=done.sent
            )

    async def worker(self) -> None:
        while (item := await self.queue.get()) is not None:
            job, state = item
            if self.stopped:
                self.settle(state, _stopped_first(job.row_number))
                continue
            try:
                sent = await self.upserter.handle(job)
            except asyncio.CancelledError:
                self.settle(
                    state,
                    _not_sent(job.row_number, "interrupted", "in flight when the run was stopped"),
                )
                raise
            self.settle(state, sent, job.phone)
            if (why := self.journal.failure) is not None:
                self.stop(why)
            if (reply := self.upserter.stop_reply) is not None:
                self.stop(
                    f"Kirim answered {reply.status} {reply.error_code}: {reply.error_message}"
                )
            if self.sender.budget_exhausted:
                self.stop(
                    f"retry budget spent ({self.sender.stats.fault_retries} retries after "
                    "server errors or timeouts): Kirim looks unwell"
                )

    def settle_queued(self) -> None:
        """After the workers are gone: rows still queued were never sent."""
        while not self.queue.empty():
            if (item := self.queue.get_nowait()) is not None:
                job, state = item
                self.settle(state, _stopped_first(job.row_number))

    def _triage(
        self,
        state: BatchState,
        rows: list[tuple[Any, ...]],
        entries: dict[str, Entry],
        account: str,
        run_id: int,
    ) -> list[Job]:
        """Settle the rows that need no request; return jobs for the others."""
        now, mode, limit = self.journal.now(), self.options.on_existing, self.options.limit
        jobs: list[Job] = []
        for row, phone, name, email, meta in rows:
            entry = entries.get(phone)
            if entry is not None and entry.state == "done" and mode != "update":
                own = entry.run_id == run_id and entry.outcome
                status = Status(entry.outcome) if own and entry.outcome else Status.EXISTS
                self.settle(
                    state,
                    Sent(row, status, contact_id=entry.contact_id, request_id=entry.request_id),
                )
            elif self.stopped:
                self.settle(state, _stopped_first(row))
            elif limit is not None and self.sent_rows >= limit:
                self.settle(state, _not_sent(row, "limit_reached", f"not sent: --limit {limit}"))
            else:
                body = make_body(phone=phone, name=name, email=email, metadata=meta)
                job = make_job(row_number=row, account=account, body=body, lookup=mode != "create")
                if entry is not None and entry.state == "pending":
                    # maybe sent before: the same key within its lifetime makes Kirim replay;
                    # otherwise only a lookup can tell whether it was created
                    fresh = (
                        entry.idem_key == job.key
                        and now - entry.sent_at < KEY_TTL_S
                        and not entry.needs_lookup
                    )
                    job = replace(job, lookup=job.lookup or not fresh)
                jobs.append(job)
                self.sent_rows += 1
        return jobs

    async def feed(self, batches: Iterator[PlannedBatch], account: str, run_id: int) -> None:
        """Queue every valid row, a chunk at a time; after a stop, read no further batch."""
        while not self.stopped:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                break
            state = BatchState(batch)
            self.inflight.append(state)
            if isinstance(last := batch.planned["row_number"].max(), int):
                self.last_row = last
            valid = batch.planned.filter(pl.col("status") == Status.VALID.value)
            if skipped := batch.planned.height - valid.height:
                self.progress.advance("skipped", skipped)
            rows = list(valid.select(*_SEND_COLUMNS).iter_rows())
            state.waiting = len(rows)
            for start in range(0, len(rows), _CHUNK):
                for job in await self._journalled(
                    state, rows[start : start + _CHUNK], account, run_id
                ):
                    await self.queue.put((job, state))
            self._drain()

    async def _journalled(
        self, state: BatchState, rows: list[tuple[Any, ...]], account: str, run_id: int
    ) -> list[Job]:
        """Triage a chunk and journal its jobs ``pending``, one commit, before they are
        queued. If the journal fails, the run stops and these rows are not sent."""
        jobs: list[Job] | None = None
        try:
            entries = await self.journal.entries([r[1] for r in rows])
            jobs = self._triage(state, rows, entries, account, run_id)
            if jobs:
                await self.journal.intend((j.phone, j.key) for j in jobs)
            return jobs
        except JournalError as exc:
            self.stop(str(exc))
            unsent = [r[0] for r in rows] if jobs is None else [j.row_number for j in jobs]
            for row in unsent:  # (rows triage settled are settled already)
                self.settle(state, _stopped_first(row))
            return []

    def add_unread(self, raw: Iterable[pl.DataFrame], *, phone_column: str) -> None:
        """After a stop: every row never read gets its status, cheaply, from the raw file."""
        for frame in raw:
            rest = frame.filter(pl.col("row_number") > self.last_row)
            if rest.height == 0:
                continue
            planned = (
                pl.DataFrame({"row_number": rest["row_number"]})
                .with_columns(
                    pl.lit(None, dtype).alias(name)
                    for name, dtype in PLANNED_SCHEMA.items()
                    if name != "row_number"
                )
                .with_columns(
                    pl.lit(Status.FAILED.value).alias("status"),
                    pl.lit("not_attempted").alias("error_code"),
                    pl.lit("the run stopped before this row was read").alias("error_message"),
                    rest[phone_column].alias("raw_phone"),
                )
            )
            self.report.add_batch(planned=planned, original=rest.drop("row_number"))
            self.progress.advance("failed", rest.height)


def _not_sent(row: int, code: str, message: str) -> Sent:
    return Sent(row, Status.FAILED, error_code=code, error_message=message, retryable=True)


def _stopped_first(row: int) -> Sent:
    return _not_sent(row, "not_attempted", "the run stopped first")
