"""Labels, so people can find what an import made: the ``--label`` names go on every contact the
import wrote (created or updated, by this run or, for an ``unchanged`` row, an earlier one),
and a row's ``labels`` column on its contact whatever the row's status (an ``unchanged`` row
whose column gained a label gets just that attach).

A label is made when Kirim has none of that name (``GET /v1/labels`` once, every page of it,
then ``POST /v1/labels``); contacts get it with ``POST /v1/{account}/contacts/bulk_label``, at most
``LABEL_CHUNK`` ids a call, once a batch of rows has settled. Every call goes through the
run's ``Sender`` under the write (or read) bucket, like the contacts' own. The journal records
which labels each contact got (``Journal.labelled``), so labels already in place cost nothing
the next night. A label call that fails never undoes a contact: the row keeps its status and
gets a warning. When Kirim skips some contacts of a call, ``send.attach`` finds which and why:
the others are recorded as labelled, only the skipped rows are warned, with their reason, and
a contact deleted in Kirim since is no longer claimed by the journal
(``Journal.deleted_in_kirim``: the next run looks its phone up and creates it again).
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections import defaultdict
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from functools import partial
from typing import Any

from importer.records import LABEL_SEPARATOR
from importer.send.attach import Attacher, failure_code, said
from importer.send.client import KirimClient, Reply, Verdict
from importer.send.journal import Journal
from importer.send.labeltally import LabelTally
from importer.send.limiter import TokenBucket
from importer.send.retry import Sender

LABEL_CHUNK = 1000  # bulk_label takes at most 1,000 contact ids


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One row's contact and the labels it should have."""

    row_number: int
    phone: str
    contact_id: str
    names: tuple[str, ...]  # wanted: --label (created/updated rows) and the labels column
    known: frozenset[str]  # label ids the journal says its contact has


@dataclass(frozen=True, slots=True)
class Labelled:
    names: str  # the wanted labels the contact has now, joined by LABEL_SEPARATOR
    warning: str | None


def refused_name(name: str) -> str | None:
    """Why a label name is refused, if it is: a control, zero-width or bidirectional
    character (Unicode's Cc, Cf, Zl and Zp) would hide or reorder what the name shows, in
    Kirim's dashboard as in a report. Such a label is never made, found or attached; each row
    that wants it says so in its warning."""
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            what = unicodedata.name(char, "a control character").lower()
            return (
                f"refused: the name holds U+{ord(char):04X} ({what}), a control, zero-width "
                "or bidirectional character; rename the label"
            )
    return None


async def label_pages(
    client: KirimClient, sender: Sender, reads: TokenBucket
) -> AsyncGenerator[Reply, None]:
    """Every page of Kirim's labels (``GET /v1/labels``, ``has_more``/``next_cursor``), each
    answer as it comes; one that is not OK is the last. A cursor that comes back a second time
    ends the pages too: such a server would page forever."""
    cursors: set[str] = set()
    cursor: str | None = None
    while True:
        reply, _ = await sender.call(reads, partial(client.labels, cursor=cursor))
        yield reply
        if reply.verdict is not Verdict.OK:
            return
        cursor = reply.next_cursor
        if cursor is None or cursor in cursors:
            return
        cursors.add(cursor)


class Labeler:
    def __init__(
        self,
        *,
        client: KirimClient,
        sender: Sender,
        writes: TokenBucket,
        reads: TokenBucket,
        journal: Journal,
        account: str,
        flag_names: tuple[str, ...],
        tally: LabelTally | None = None,
    ) -> None:
        self._client = client
        self._sender = sender
        self._writes = writes
        self._reads = reads
        self._journal = journal
        self._account = account
        self.flag_names = flag_names
        self._ids: dict[str, str] = {}  # name -> id, of the labels Kirim has
        self._names: dict[str, str] = {}  # id -> name
        self._missing: dict[str, str] = {}  # name -> why it could not be had
        self._missing_code: dict[str, str] = {}  # name -> that reason's code (``labeltally``)
        self.tally = tally if tally is not None else LabelTally()
        self._listed = False
        self._lock = asyncio.Lock()
        self._attacher = Attacher(
            client=client, sender=sender, writes=writes, reads=reads, account=account
        )
        self._others: dict[str, Labeler] = {account: self}

    def for_account(self, account: str) -> Labeler:
        """This labeler for another account of the organisation (a file with an account
        column): labels are the organisation's, so what is known of them is shared; the
        contacts, their attach calls and their journal entries are that account's."""
        if (other := self._others.get(account)) is None:
            other = Labeler(
                client=self._client, sender=self._sender, writes=self._writes,
                reads=self._reads, journal=self._journal, account=account,
                flag_names=self.flag_names,
            )  # fmt: skip
            other._ids, other._names, other._missing = self._ids, self._names, self._missing
            other._lock, other._others = self._lock, self._others
            self._others[account] = other
        return other

    def _learn(self, data: Any) -> None:
        for label in data if isinstance(data, list) else ():
            if isinstance(label, dict):
                name, label_id = label.get("name"), label.get("id")
                if isinstance(name, str) and isinstance(label_id, str) and label_id:
                    if refused_name(name) is not None:
                        continue
                    self._ids.setdefault(name, label_id)
                    self._names.setdefault(label_id, name)

    async def _list(self) -> Reply:
        """Every page of Kirim's labels (``label_pages``), learnt as they come; returns the
        last answer (one that is not OK ends the listing)."""
        async for reply in label_pages(self._client, self._sender, self._reads):
            if reply.verdict is Verdict.OK:
                self._learn(reply.data)
        return reply

    async def _ensure(self, names: set[str]) -> None:
        """Find or make each label by name (once per run and name)."""
        for name in names:
            if name not in self._missing and (why := refused_name(name)) is not None:
                self._missing[name], self._missing_code[name] = why, "refused_name"
        async with self._lock:
            todo = sorted(n for n in names if n not in self._ids and n not in self._missing)
            if todo and not self._listed:
                listed = await self._list()
                self._listed = listed.verdict is Verdict.OK
                if not self._listed:  # (names found on the pages read before it failed are had)
                    for name in todo:
                        if name not in self._ids:
                            why = f"the labels could not be listed ({said(listed)})"
                            code = failure_code(listed, "not_listed")
                            self._missing[name], self._missing_code[name] = why, code
                    return
            for name in todo:
                if name in self._ids:
                    continue
                made, _ = await self._sender.call(
                    self._writes, partial(self._client.create_label, name=name)
                )
                if made.verdict is Verdict.OK:
                    self._learn([made.data])
                    continue
                if made.verdict is Verdict.EXISTS:  # made since we listed: look again
                    await self._list()
                    if name in self._ids:
                        continue
                self._missing[name] = f"it could not be made ({said(made)}: {made.error_message})"
                self._missing_code[name] = failure_code(made, "not_made")

    async def label_ids(self, names: set[str]) -> dict[str, str]:
        """Kirim's ids of these labels, found or made as for attaching (``mirror``)."""
        await self._ensure(names)
        return {n: self._ids[n] for n in names if n in self._ids}

    async def label(self, rows: list[LabelRow]) -> dict[int, Labelled]:
        """Attach what each row's contact lacks; returns each row's labels and warning."""
        await self._ensure({n for r in rows for n in r.names})
        wanted: dict[str, list[LabelRow]] = defaultdict(list)
        for r in rows:
            for name in r.names:
                label_id = self._ids.get(name)
                if label_id is not None and label_id not in r.known:
                    wanted[label_id].append(r)
        got: dict[int, set[str]] = defaultdict(set)
        warnings: dict[int, list[str]] = defaultdict(list)
        gone: set[int] = set()  # rows whose contact was deleted in Kirim since
        codes: dict[tuple[int, str], str] = {}  # (row, label id) -> why it was not attached
        for label_id, members in wanted.items():
            name = self._names[label_id]
            for start in range(0, len(members), LABEL_CHUNK):
                chunk = members[start : start + LABEL_CHUNK]
                missed = await self._attacher.attach(
                    label_id, {r.contact_id: r.phone for r in chunk}
                )
                for r in chunk:
                    if (miss := missed.get(r.contact_id)) is None:
                        got[r.row_number].add(label_id)
                        continue
                    codes[r.row_number, label_id] = miss.code
                    again = "" if miss.deleted else "; a rerun tries again"
                    warnings[r.row_number].append(f"label {name!r} not attached: {miss.why}{again}")
                    if miss.deleted:
                        gone.add(r.row_number)
        if gone:
            await self._journal.deleted_in_kirim(
                (r.phone for r in rows if r.row_number in gone), account=self._account
            )
        labelled = [
            (r.phone, r.known | got[r.row_number])
            for r in rows
            if got[r.row_number] and r.row_number not in gone
        ]
        if labelled:
            await self._journal.labelled(labelled, account=self._account)
        out: dict[int, Labelled] = {}
        for r in rows:
            has = frozenset() if r.row_number in gone else r.known | got[r.row_number]
            for name in r.names:
                if name in self._missing:
                    warnings[r.row_number].append(f"label {name!r}: {self._missing[name]}")
                    self.tally.fail(self._missing_code[name])
                    continue
                label_id = self._ids.get(name, "")
                if label_id in has:
                    if label_id in got[r.row_number]:
                        self.tally.attached += 1
                    else:
                        self.tally.in_place += 1
                else:
                    gone_code = "deleted_in_kirim" if r.row_number in gone else "call_failed"
                    self.tally.fail(codes.get((r.row_number, label_id), gone_code))
            names = [n for n in r.names if self._ids.get(n) in has]
            why = "; ".join(dict.fromkeys(warnings[r.row_number])) or None
            out[r.row_number] = Labelled(LABEL_SEPARATOR.join(names), why)
        return out
