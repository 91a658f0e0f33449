"""The labels step between the work queue and the report: each finished batch, in input
order, has its rows' labels attached (``labels.Labeler``), then goes on to the report.

Which rows get which names: ``--label`` goes on every contact the import wrote (created,
updated, or unchanged: written on an earlier night), the labels column on every row's
contact whatever its status; a row whose contact id Kirim's answer did not give (a 409
without one) is told so. The journal's labels count only for the contact they were attached
to: a row that ends on another contact (created again, or found under another id) has none.
Cancelled (a stop that outlasted the drain), the step reports what is left without labels:
every row still ends in the report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import polars as pl

from importer.errors import JournalError
from importer.records import LABEL_SEPARATOR, Status, ValidatedBatch
from importer.send.labels import Labeler, Labelled, LabelRow
from importer.send.records import RowResult
from importer.send.stop import Stop, Why

# contacts whose body we wrote (this run, or an earlier one: unchanged): --label is theirs
_WRITTEN = frozenset({Status.CREATED, Status.UPDATED, Status.UNCHANGED})
_HAS_CONTACT = frozenset({Status.CREATED, Status.UPDATED, Status.UNCHANGED, Status.EXISTS})
_NO_ID = "labels not attached: Kirim's answer (409, exists) did not give the contact's id"


@dataclass
class Finished:
    """A batch whose every row has settled, with what became of its sent rows."""

    batch: ValidatedBatch
    results: list[RowResult] = field(default_factory=list)
    # row -> the journal's contact and the labels it has (a row ending on another contact,
    # created again or found under another id, has none of them)
    known: dict[int, tuple[str | None, frozenset[str]]] = field(default_factory=dict)


class Reporting(Protocol):
    def batch_done(
        self, rows: pl.DataFrame, original: pl.DataFrame, results: Sequence[RowResult]
    ) -> None:
        """A batch, in input order, with what became of its rows that reached this stage."""


def joined(first: str | None, second: str | None) -> str | None:
    """Two warnings on one row, both kept."""
    return "; ".join(w for w in (first, second) if w) or None


class Labelling:
    """Finished batches in (``put``, in input order), labelled, then to ``listener``, until
    ``close``."""

    def __init__(
        self,
        *,
        labeler: Labeler,
        stop: Stop,
        listener: Reporting,
        routed: bool = False,
        sync_names: tuple[str, ...] = (),
        on_synced: Callable[[str, list[tuple[str, str]]], Awaitable[None]] | None = None,
    ) -> None:
        self._labeler = labeler
        self._routed = routed  # rows name their account (validation's ``account`` column)
        self._stop = stop
        self._listener = listener
        # --sync-label: on every row's contact (whatever its status), and each contact that
        # has one is told to ``on_synced`` (label, [(phone, contact id)]): ``mirror``
        self._sync_names = sync_names
        self._on_synced = on_synced
        self._queue: asyncio.Queue[Finished | None] = asyncio.Queue()

    def put(self, done: Finished) -> None:
        self._queue.put_nowait(done)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def run(self) -> None:
        done: Finished | None = None
        try:
            while (done := await self._queue.get()) is not None:
                results = await self._labelled(done)
                self._listener.batch_done(done.batch.rows, done.batch.original, results)
                done = None
        except asyncio.CancelledError:
            left: list[Finished | None] = [done]
            while not self._queue.empty():
                left.append(self._queue.get_nowait())
            for batch in left:
                if batch is not None:
                    self._listener.batch_done(batch.batch.rows, batch.batch.original, batch.results)
            raise

    async def _labelled(self, done: Finished) -> list[RowResult]:
        rows, unknown = self._label_rows(done)
        try:
            if self._routed:  # a file with an account column: each account's contacts
                by_account: dict[str, list[LabelRow]] = {}
                accounts = dict(
                    zip(done.batch.rows["row_number"], done.batch.rows["account"], strict=True)
                )
                for one in rows:
                    by_account.setdefault(accounts[one.row_number], []).append(one)
                labelled: dict[int, Labelled] = {}
                for account, some in by_account.items():
                    labelled |= await self._labeler.for_account(account).label(some)
            else:
                labelled = await self._labeler.label(rows)
            if self._sync_names and self._on_synced is not None:
                await self._synced(rows, labelled)
        except JournalError as exc:
            self._stop.request(Why.JOURNAL, str(exc))
            return done.results
        for row, wanted in unknown:  # wanted labels, but Kirim's answer named no contact
            labelled[row] = Labelled("", _NO_ID)
            self._labeler.tally.fail("no_contact_id", wanted)
        return [
            replace(r, labels=got.names, warning=joined(r.warning, got.warning))
            if (got := labelled.get(r.row_number)) is not None
            else r
            for r in done.results
        ]

    async def _synced(self, rows: list[LabelRow], labelled: dict[int, Labelled]) -> None:
        """Tell which contacts now have each ``--sync-label`` name."""
        assert self._on_synced is not None
        for name in self._sync_names:
            have = [
                (r.phone, r.contact_id)
                for r in rows
                if (got := labelled.get(r.row_number)) is not None
                and name in got.names.split(LABEL_SEPARATOR)
            ]
            if have:
                await self._on_synced(name, have)

    def _label_rows(self, done: Finished) -> tuple[list[LabelRow], list[tuple[int, int]]]:
        """The rows whose contact should get labels, and those that should but whose contact
        id is unknown."""
        flag = self._labeler.flag_names
        rows = done.batch.rows.filter(pl.col("status") == Status.VALID.value)
        column = dict(zip(rows["row_number"], rows["labels"], strict=True))
        phones = dict(zip(rows["row_number"], rows["phone_number"], strict=True))
        out: list[LabelRow] = []
        unknown: list[tuple[int, int]] = []  # (row, how many labels it wanted)
        for r in done.results:
            if r.status not in _HAS_CONTACT:
                continue
            names = flag if r.status in _WRITTEN else ()
            names = (*names, *self._sync_names)  # (--sync-label: every row's contact)
            if cell := column.get(r.row_number):
                names = (*names, *cell.split(LABEL_SEPARATOR))
            if not (names := tuple(dict.fromkeys(names))):
                continue
            if r.contact_id is None:
                unknown.append((r.row_number, len(names)))
                continue
            had, known = done.known.get(r.row_number, (None, frozenset()))
            if had != r.contact_id:  # another contact than the journal's: it has none of them
                known = frozenset()
            out.append(LabelRow(r.row_number, phones[r.row_number], r.contact_id, names, known))
        return out, unknown
