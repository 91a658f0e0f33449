"""An account's contacts read back a page at a time (``GET /v1/{account}/contacts``, 100 a
page, ``has_more``/``next_cursor`` followed), under the read budget: what ``run --adopt``
fills the journal from (``send.adopt``) and what ``kirim-import export`` writes
(``importer.export``).

``pages`` yields each page with the cursor of the one after it, so a caller that keeps that
cursor can start again from there (a killed export resumes). A contact on a page is kept
only when it has an id and a phone (what a list answer promises); others are counted as
``malformed``. A cursor that comes back a second time ends the listing (such a server would
page forever). An answer that is not OK once its tries are spent ends the pages with a
``PagesFailed`` (the reply says why); a stop ends them quietly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from importer.send.client import KirimClient, Reply, Verdict
from importer.send.limiter import TokenBucket
from importer.send.retry import Sender


@dataclass(frozen=True, slots=True)
class Page:
    contacts: list[dict[str, Any]]
    next_cursor: str | None  # where the page after this one starts; None: this was the last
    malformed: int = 0  # entries without an id or a phone, left out


class PagesFailed(Exception):
    """Kirim's answer to a page was not a page, once its tries were spent."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.told}: {reply.error_message or 'no contacts page'}")
        self.reply = reply


def _usable(contact: Any) -> bool:
    return (
        isinstance(contact, dict)
        and isinstance(contact.get("id"), str)
        and bool(contact["id"])
        and isinstance(contact.get("phone_number"), str)
        and bool(contact["phone_number"])
    )


async def pages(
    *,
    client: KirimClient,
    sender: Sender,
    reads: TokenBucket,
    account: str,
    cursor: str | None = None,
    label_id: str | None = None,
) -> AsyncIterator[Page]:
    """The account's contacts from ``cursor`` (None: the first page) on, a page at a time."""
    seen: set[str] = set()
    while True:
        reply, _ = await sender.call(
            reads,
            partial(client.contacts_page, account=account, cursor=cursor, label_id=label_id),
        )
        if reply.verdict is not Verdict.OK:
            if reply.status == 0 and reply.error_code == "not_attempted":
                return  # the run stopped first
            raise PagesFailed(reply)
        rows = reply.data if isinstance(reply.data, list) else []
        kept = [c for c in rows if _usable(c)]
        cursor = reply.next_cursor
        if cursor is not None and cursor in seen:
            cursor = None
        yield Page(kept, cursor, len(rows) - len(kept))
        if cursor is None:
            return
        seen.add(cursor)
