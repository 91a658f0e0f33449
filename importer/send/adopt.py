"""A first sync that pages instead of looking up (``run --adopt``): the account's contacts
are read a page at a time (``send.pages``: 100 a read) and the journal is filled with each
one's id and the fingerprint of the body Kirim holds (``Journal.adopt``), so a row already in
Kirim needs no lookup: ``unchanged`` when its body is the one Kirim holds, a PATCH straight
to the id (``updated``) when it differs (update mode), ``exists`` in skip mode.

Which way is cheaper: a lookup costs one read per row; a page-through one read per 100
contacts the account holds. Kirim tells no count, so ``worth_paging`` decides on what is
known (the rows, and whether the journal knows this account), and ``adopt`` stops paging once
it has spent as many reads as the lookups would have cost (``max_reads``): past that, the
rows it did not reach are looked up as before, so paging never costs more than twice the
cheaper way.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

from importer.send.client import PAGE_SIZE, KirimClient
from importer.send.journal import Journal
from importer.send.limiter import TokenBucket
from importer.send.pages import PagesFailed, pages
from importer.send.retry import Sender
from importer.send.upsert import body_fingerprint, make_body

ADOPT_BATCH = 5_000  # contacts a journal commit: a page each would be a thousand fsyncs


@dataclass(frozen=True, slots=True)
class Adopted:
    reads: int  # pages read
    contacts: int  # contacts the journal learnt
    complete: bool  # every page was read (else: the cap, a stop, or a failure ended it)
    why: str | None = None  # why it ended early, when it did


def kirim_body(contact: dict[str, Any]) -> dict[str, Any]:
    """The body a row would send for this contact as Kirim holds it (``make_body``'s shape),
    so equal contacts have equal fingerprints."""
    name = contact.get("name") if isinstance(contact.get("name"), str) else None
    email = contact.get("email") if isinstance(contact.get("email"), str) else None
    metadata = contact.get("metadata")
    meta = json.dumps(metadata) if isinstance(metadata, dict) and metadata else None
    return make_body(phone=contact["phone_number"], name=name, email=email or None, metadata=meta)


def worth_paging(*, rows: int | None, journal_knows_account: bool) -> bool:
    """Adopt without being asked: the journal knows nothing of this account (a first sync)
    and the source has more rows than one page holds (one read per row against one per
    page: fewer than a page's worth is never worth a page-through)."""
    return not journal_knows_account and rows is not None and rows > PAGE_SIZE


def cost_lines(rows: int, *, journal_knows: int = 0) -> list[str]:
    """What ``plan`` says of a first sync's two ways (no network: the account's size is not
    known to it)."""
    lookups = max(rows - journal_knows, 0)
    if rows and not lookups:
        return [
            f"First sync: the journal knows all {rows} rows: no lookup (run --adopt would "
            f"still page the account: one read per {PAGE_SIZE} contacts it holds)."
        ]
    lines = [
        f"First sync: looking rows up costs {lookups} reads (one per row the journal does not "
        f"know); paging the account (run --adopt) costs one read per {PAGE_SIZE} contacts it "
        f"holds: cheaper while it holds fewer than {lookups * PAGE_SIZE} contacts "
        f"({math.ceil(rows / PAGE_SIZE)} reads if it holds just these rows)."
    ]
    if journal_knows:
        lines.append(
            f"  the journal knows {journal_knows} of these rows already: a run pages only "
            "with --adopt"
        )
    else:
        lines.append(
            "  the journal knows none of these rows: a run pages by itself (capped at the "
            "lookups' cost)"
            if rows > PAGE_SIZE
            else f"  a run pages by itself only for more than {PAGE_SIZE} rows: this one looks "
            "its rows up unless --adopt"
        )
    return lines


async def adopt(
    *,
    client: KirimClient,
    sender: Sender,
    reads: TokenBucket,
    journal: Journal,
    account: str,
    max_reads: int | None = None,
) -> Adopted:
    """Read the account's contacts into the journal; at most ``max_reads`` pages."""
    read = 0
    seen: set[str] = set()
    batch: list[tuple[str, str, str]] = []
    writing: asyncio.Task[None] | None = None  # the last batch, written while pages come

    async def flush() -> None:
        nonlocal batch, writing
        if writing is not None:
            await writing
        writing = asyncio.ensure_future(journal.adopt(batch)) if batch else None
        batch = []

    try:
        async for page in pages(client=client, sender=sender, reads=reads, account=account):
            read += 1
            for contact in page.contacts:
                phone = contact["phone_number"]
                if phone in seen:  # two contacts with one phone: the first listed is kept
                    continue
                seen.add(phone)
                batch.append((phone, contact["id"], body_fingerprint(kirim_body(contact))))
            if len(batch) >= ADOPT_BATCH:
                await flush()
            if page.next_cursor is None:
                return Adopted(read, len(seen), True)
            if max_reads is not None and read >= max_reads:
                why = f"capped at {max_reads} reads, what looking the rows up would cost"
                return Adopted(read, len(seen), False, why)
    except PagesFailed as exc:  # the rows not reached are looked up as before
        return Adopted(read, len(seen), False, str(exc))
    finally:  # what was read is kept, however the pages ended
        await flush()
        await flush()
    return Adopted(read, len(seen), False, "the run stopped")
