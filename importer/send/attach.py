"""One label onto a chunk of contacts, accounted per contact.

``bulk_label`` answers with counts (``{applied, skipped_cross_org, skipped_team_mismatch}``),
never with which contacts it skipped. When it applied fewer than it was given, ``Attacher``
finds which by halving: it sends the first half again (attaching is idempotent: a contact that
has the label keeps it and counts as applied) and takes the second half's counts as the
difference, each half down to the contacts skipped: about k·log2(n/k) more calls for k skipped
of n, ten for one contact in a chunk of 1,000. A call whose every contact was skipped needs no
search. Then each skipped contact's reason: skips its call counted all as team mismatches need
nothing more; any other is looked up by phone (one read): no contact with that phone, or
another one, means it was deleted in Kirim since (``Missed.deleted``); the same contact means
Kirim skipped it for the reason its answer gave.

Why halving rather than reading every contact of the chunk: the answer does not say which
contact it skipped, so reads would have to cover the whole chunk, 1,000 reads for one deleted
contact (100 s of the free plan's read budget, 10 s of Pro's), on every chunk with a skip; and a
read that finds a contact does not prove the label went on (a team mismatch skips contacts
that exist). Halving spends a few writes, learns from Kirim's own counts which calls skipped
what, and leaves the reads for the skipped contacts alone.

Contacts found deleted are remembered for the run: a later chunk (another label, another
batch) does not send them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from importer.send.client import KirimClient, Reply, Verdict, a_contact
from importer.send.limiter import TokenBucket
from importer.send.retry import Sender


@dataclass(frozen=True, slots=True)
class Missed:
    """Why a contact did not get the label. ``deleted``: Kirim no longer has the contact (the
    journal must stop claiming it); otherwise a rerun tries again."""

    why: str
    deleted: bool = False
    code: str = "skipped"  # the reason's code (``labeltally``)


DELETED = Missed(
    "the contact was deleted in Kirim since (the next run looks its phone up and creates it "
    "again)",
    deleted=True,
    code="deleted_in_kirim",
)
TEAM = Missed(
    "Kirim skipped the contact: the label's team does not include this account",
    code="team_mismatch",
)
OTHER_ORG = Missed("Kirim skipped the contact as another organisation's", code="other_org")
UNSAID = Missed("Kirim skipped the contact without saying why")


def said(reply: Reply) -> str:
    """A failed answer in a few words, for a warning: its status (or none) and code."""
    return f"{reply.status or 'no answer'} {reply.error_code}"


def failure_code(reply: Reply, code: str) -> str:
    """``code`` for a call that failed, or ``not_attempted`` when the run stopped before it
    was sent (``labeltally``)."""
    return "not_attempted" if reply.status == 0 and reply.error_code == "not_attempted" else code


@dataclass(frozen=True, slots=True)
class Counts:
    """A ``bulk_label`` answer to a call with ``asked`` distinct contact ids."""

    asked: int
    applied: int
    cross_org: int = 0
    team: int = 0

    @property
    def skipped(self) -> int:
        return max(self.asked - self.applied, 0)

    def rest(self, part: Counts, asked: int) -> Counts | None:
        """What this answer says of the ``asked`` ids a later call for ``part`` of them left
        out, when the two add up (None: Kirim changed in between)."""
        rest = Counts(
            asked, self.applied - part.applied, self.cross_org - part.cross_org,
            self.team - part.team,
        )  # fmt: skip
        fits = 0 <= rest.applied <= asked and min(rest.cross_org, rest.team) >= 0
        return rest if fits else None


def _counts(reply: Reply, asked: int) -> Counts:
    data = reply.data  # its shape is checked (client.labels_applied)
    return Counts(
        asked, data["applied"], data.get("skipped_cross_org", 0),
        data.get("skipped_team_mismatch", 0),
    )  # fmt: skip


@dataclass(kw_only=True, slots=True)
class Attacher:
    """Labels onto contacts of ``account``: writes under ``writes``, lookups under ``reads``,
    each through ``sender``."""

    client: KirimClient
    sender: Sender
    writes: TokenBucket
    reads: TokenBucket
    account: str
    gone: set[str] = field(default_factory=set)  # contact ids found deleted in Kirim this run

    async def attach(self, label_id: str, contacts: dict[str, str]) -> dict[str, Missed]:
        """Attach the label to ``contacts`` (contact id -> phone, at most 1,000); returns the
        contacts that did not get it, each with why. Every other one has it."""
        missed = {cid: DELETED for cid in contacts if cid in self.gone}
        ids = [cid for cid in contacts if cid not in missed]
        if not ids:
            return missed
        reply, counts = await self._bulk(label_id, ids)
        if counts is None:
            failed = Missed(
                f"the call failed ({said(reply)})", code=failure_code(reply, "call_failed")
            )
            return missed | dict.fromkeys(ids, failed)
        for cid, found in (await self._skipped(label_id, ids, counts)).items():
            if isinstance(found, Counts):
                found = await self._reason(cid, contacts[cid], found)
            missed[cid] = found
        self.gone.update(cid for cid, m in missed.items() if m.deleted)
        return missed

    async def _bulk(self, label_id: str, ids: list[str]) -> tuple[Reply, Counts | None]:
        send = partial(
            self.client.bulk_label, account=self.account, label_id=label_id, contact_ids=ids
        )
        reply, _ = await self.sender.call(self.writes, send)
        return reply, (_counts(reply, len(ids)) if reply.verdict is Verdict.OK else None)

    async def _skipped(
        self, label_id: str, ids: list[str], counts: Counts
    ) -> dict[str, Counts | Missed]:
        """Which of ``ids``, sent together and answered with ``counts``, Kirim skipped: each
        with the answer of the narrowest call that showed it, or why that is unknown."""
        if counts.skipped == 0:
            return {}
        if counts.skipped >= len(ids):
            return dict.fromkeys(ids, counts)
        half = len(ids) // 2
        left, right = ids[:half], ids[half:]
        reply, of_left = await self._bulk(label_id, left)
        of_right = None if of_left is None else counts.rest(of_left, len(right))
        if of_left is not None and of_right is None:  # changed since: ask for that half too
            reply, of_right = await self._bulk(label_id, right)
        if of_left is None or of_right is None:
            unknown = Missed(
                f"Kirim skipped {counts.skipped} of {len(ids)} contacts in one call, and which "
                f"could not be found out ({said(reply)})",
                code="skipped_unknown",
            )
            return dict.fromkeys(ids, unknown)
        return {
            **await self._skipped(label_id, left, of_left),
            **await self._skipped(label_id, right, of_right),
        }

    async def _reason(self, contact_id: str, phone: str, counts: Counts) -> Missed:
        """Why Kirim skipped this contact, in a call answered with ``counts``."""
        if counts.team >= counts.skipped:  # every skip of that call: no read needed
            return TEAM
        find = partial(self.client.find_by_phone, account=self.account, phone=phone)
        reply, _ = await self.sender.call(self.reads, find)
        if reply.verdict is not Verdict.OK:
            return Missed(
                f"Kirim skipped the contact, and looking it up failed ({said(reply)})",
                code="lookup_failed",
            )
        found = reply.data[0] if reply.data else None
        if found is None:
            return DELETED
        if not a_contact(found) or found.get("phone_number") != phone:
            return Missed(
                "Kirim skipped the contact, and its lookup answered another record",
                code="lookup_mismatch",
            )
        if str(found["id"]) != contact_id:  # the phone has another contact now
            return DELETED
        return TEAM if counts.team else OTHER_ORG if counts.cross_org else UNSAID
