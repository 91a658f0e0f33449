"""One valid row's way to Kirim: look it up (unless told not to), create or update it, and
journal the outcome. Every answer becomes a ``RowResult`` value; none raises.

``on_existing``:
- ``skip`` (default): look the phone up first (read budget); found means ``exists``.
- ``update``: look up; if found, PATCH the fields that differ (``updated``), else ``exists``.
- ``create``: no lookup; one request per row.
Which of those a row needs is ``decide``'s answer (``Job.action``). A row is ``done`` in
the journal only when Kirim's answer shows the contact: a create or update answered with a
contact that has an id, or a lookup that found the phone. An answer that means nothing more
can succeed (a refused key, a missing account) stops the run through its ``Stop``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from importer.options import OnExisting
from importer.records import Status
from importer.send.client import (
    MISMATCH,
    UNREADABLE,
    KirimClient,
    Reply,
    Verdict,
    a_contact,
    canonical_json,
    idempotency_key,
    same_phone,
)
from importer.send.decide import Action
from importer.send.journal import Journal
from importer.send.limiter import TokenBucket
from importer.send.records import Outcome, RowResult
from importer.send.retry import Sender


@dataclass(frozen=True, slots=True)
class Job:
    row_number: int
    phone: str
    body: dict[str, Any]
    key: str
    action: Action  # CREATE, LOOKUP, PATCH or VERIFY (``decide``)
    contact_id: str | None = None  # for PATCH and VERIFY: the contact the journal holds
    ours: bool = False  # a create of ours for it went unconfirmed (a killed invocation's, say)
    account: str | None = None  # the account it goes to (an account column); None: the run's


def make_body(
    *, phone: str, name: str | None, email: str | None, metadata: str | None
) -> dict[str, Any]:
    """The create request's body: phone always, email always (null when empty)."""
    body: dict[str, Any] = {"phone_number": phone, "email": email}
    if name:
        body["name"] = name
    if metadata:
        body["metadata"] = json.loads(metadata)
    return body


def body_fingerprint(body: dict[str, Any]) -> str:
    """What the journal keeps of the body Kirim accepted: equal bodies, equal fingerprints
    (the canonical JSON's digest; the account is in the journal's key already)."""
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()[:32]


def _our_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A PATCH without a lookup: every field of ours that has a value (a PATCH never clears
    what the row leaves empty, as ``_changes`` never does)."""
    patch = {k: body[k] for k in ("name", "email") if body.get(k) is not None}
    if body.get("metadata"):
        patch["metadata"] = body["metadata"]
    return patch


def _changes(existing: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body: fields of ours that differ. Metadata merges on Kirim's side (our
    sandbox's choice where the docs are silent), so only our keys are compared."""
    patch: dict[str, Any] = {}
    for name in ("name", "email"):
        if name in body and body[name] is not None and existing.get(name) != body[name]:
            patch[name] = body[name]
    ours = body.get("metadata") or {}
    theirs = existing.get("metadata") or {}
    if any(theirs.get(k) != v for k, v in ours.items()):
        patch["metadata"] = ours
    return patch


IN_PROGRESS = "idempotency_in_progress"
MAX_GENERATIONS = 3  # creates again after a replayed answer whose contact is gone


class Upserter:
    def __init__(
        self,
        *,
        client: KirimClient,
        sender: Sender,
        writes: TokenBucket,
        reads: TokenBucket,
        journal: Journal,
        account: str,
        on_existing: OnExisting,
    ) -> None:
        self._client = client
        self._sender = sender
        self._writes = writes
        self._reads = reads
        self._journal = journal
        self._account = account
        self._mode = on_existing
        self._others: dict[str, Upserter] = {account: self}

    def for_account(self, account: str) -> Upserter:
        """This upserter for another account of the organisation (a file with an account
        column): the same client, sender, buckets and journal; its own account."""
        if (other := self._others.get(account)) is None:
            other = self._others[account] = Upserter(
                client=self._client, sender=self._sender, writes=self._writes,
                reads=self._reads, journal=self._journal, account=account,
                on_existing=self._mode,
            )  # fmt: skip
        return other

    def _failed(
        self,
        job: Job,
        reply: Reply,
        attempts: int,
        *,
        create: bool = False,
        warning: str | None = None,
    ) -> RowResult:
        """A row that did not succeed. Only a create that Kirim refused for good (a 4xx) is
        journalled ``failed``; anything else leaves the journal as it was."""
        verdict = reply.verdict  # (a STOP has stopped the run already: ``Sender.call``)
        retryable = verdict is not Verdict.ROW
        if create and verdict is Verdict.ROW:  # a no: nothing created
            self._journal.record(
                Outcome(
                    job.phone,
                    "failed",
                    None,
                    http_status=reply.status or None,
                    error_code=reply.error_code,
                    request_id=reply.request_id,
                    account=self._account,
                )
            )
        # else the row stays "pending" in the journal: the request may have created the
        # contact (a lost answer, any 5xx, an answer we cannot read or that shows another
        # contact), so a rerun re-sends the same key or looks the phone up first; never
        # sends it as new
        return RowResult(
            job.row_number,
            Status.FAILED,
            http_status=reply.status or None,
            error_code=reply.error_code,
            error_message=reply.error_message,
            request_id=reply.request_id,
            attempts=attempts,
            retryable=retryable,
            warning=warning,
        )

    def _done(
        self,
        job: Job,
        status: Status,
        reply: Reply,
        attempts: int,
        found_id: object,
        *,
        ours: bool,
        warning: str | None = None,
    ) -> RowResult:
        """A row Kirim's answer proves; ``ours``: the answer shows it holds exactly this row's
        body (created, updated, or found equal in update mode), so the journal keeps its
        fingerprint and the next night in update mode sends nothing for it."""
        contact_id = _id_text(found_id)
        self._journal.record(
            Outcome(
                job.phone,
                "done",
                status.value,
                contact_id=contact_id,
                http_status=reply.status,
                request_id=reply.request_id,
                body_hash=body_fingerprint(job.body) if ours and contact_id else None,
                account=self._account,
            )
        )
        return RowResult(
            job.row_number,
            status,
            contact_id=contact_id,
            http_status=reply.status,
            request_id=reply.request_id,
            attempts=attempts,
            replayed=reply.replayed,
            warning=warning,
        )

    async def handle(self, job: Job) -> RowResult:
        attempts = 0
        warning: str | None = None
        if job.action is Action.PATCH and job.contact_id is not None:
            reply, attempts = await self._patch(job, job.contact_id, _our_fields(job.body))
            if reply.verdict is Verdict.OK:
                return self._done(job, Status.UPDATED, reply, attempts, job.contact_id, ours=True)
            if reply.status != 404:
                return self._patch_failed(job, job.contact_id, reply, attempts)
            # deleted in Kirim since: find it by phone (someone may have made it again), or
            # create it; the lookup below decides
            warning = f"the contact {job.contact_id} was deleted in Kirim; "
        if job.action is not Action.CREATE:
            reply, n = await self._lookup(job)
            attempts += n
            if reply.verdict is not Verdict.OK:
                return self._failed(job, reply, attempts)
            if reply.data:
                return await self._existing(job, reply.data[0], reply, attempts, warning)
            if job.action is Action.VERIFY:
                gone = job.contact_id or "the journal's contact"
                warning = f"the contact {gone} was deleted in Kirim; "
        if job.action is not Action.CREATE:  # a lookup found nothing: the create may land
            await self._journal.creating(job.phone, job.key, account=self._account)
        return await self._create(job, attempts, warning)

    async def _lookup(self, job: Job) -> tuple[Reply, int]:
        """The phone's contact, checked: an OK reply's data is empty or starts with it."""
        reply, n = await self._sender.call(
            self._reads,
            lambda: self._client.find_by_phone(account=self._account, phone=job.phone),
        )
        if reply.verdict is Verdict.OK and reply.data:  # a list; the first is the phone's
            found = reply.data[0]
            if not a_contact(found) or not same_phone(found.get("phone_number"), job.phone):
                return _not_the_contact(reply), n
        return reply, n

    async def _create(self, job: Job, attempts: int, warning: str | None) -> RowResult:
        """Create the contact; an answer Kirim replayed is confirmed by a lookup, since it
        proves the contact existed, not that it exists: if it is gone, it is created again
        under a key of its own (derived from the vanished contact's id), once per vanished
        contact."""
        key = job.key
        for _ in range(MAX_GENERATIONS):
            send = partial(self._client.create, account=self._account, body=job.body, key=key)
            reply, n = await self._sender.call(self._writes, send)
            attempts += n
            if reply.verdict is Verdict.AMBIGUOUS or reply.error_code == IN_PROGRESS:
                # Kirim saw this key (or still works on it, past our tries): did it create?
                return await self._after_conflict(job, reply, attempts, warning)
            if reply.verdict is Verdict.EXISTS:
                return self._done(job, Status.EXISTS, reply, attempts, None, ours=False)
            if reply.verdict is not Verdict.OK:
                return self._failed(job, reply, attempts, create=True, warning=warning)
            if not reply.replayed:  # a contact with this phone and an id: created, by us
                contact_id = reply.data["id"]
                return self._done(
                    job, Status.CREATED, reply, attempts, contact_id, ours=True,
                    warning=_said(warning, "created again"),
                )  # fmt: skip
            # the key was used before: by this call's earlier attempt (n > 1), by a create of
            # ours never confirmed (job.ours), or by a run the journal does not know (exists)
            ours = n > 1 or job.ours
            confirm, n = await self._lookup(job)
            attempts += n
            if confirm.verdict is not Verdict.OK:  # unproven: stays pending, looked up again
                return self._failed(job, confirm, attempts, warning=warning)
            if confirm.data:
                found = confirm.data[0]
                if found["id"] == reply.data["id"]:
                    status = Status.CREATED if ours or key != job.key else Status.EXISTS
                    return self._done(
                        job, status, reply, attempts, found["id"],
                        ours=not _changes(found, job.body), warning=_said(warning, "created again"),
                    )  # fmt: skip
                return await self._existing(job, found, confirm, attempts, warning)
            vanished = _id_text(reply.data["id"]) or ""
            warning = warning or f"the contact {vanished} was deleted in Kirim; "
            key = idempotency_key(account=self._account, body=job.body, generation=vanished)
            await self._journal.creating(job.phone, key, account=self._account)
        gone = Reply(
            status=reply.status, error_code=MISMATCH, request_id=reply.request_id,
            error_message=f"every create was answered with a contact deleted since ({warning})",
        )  # fmt: skip
        return self._failed(job, gone, attempts)

    async def _after_conflict(
        self, job: Job, conflict: Reply, attempts: int, warning: str | None
    ) -> RowResult:
        """Kirim refused the key as already used (422 ``idempotency_key_reuse``, 409
        ``idempotency_conflict``), or was still working on it when our tries ran out (409
        ``idempotency_in_progress``): an earlier attempt may have created the contact. A lookup
        tells; until one does, the journal keeps the row pending and asks for a lookup before
        any new create, in every mode."""
        reply, n = await self._lookup(job)
        attempts += n
        if reply.verdict is Verdict.OK and reply.data:
            return await self._existing(job, reply.data[0], reply, attempts, warning, ours=True)
        self._journal.record(
            Outcome(
                job.phone, "pending", None, http_status=conflict.status,
                error_code=conflict.error_code, request_id=conflict.request_id,
                account=self._account,
            )
        )  # fmt: skip
        return self._failed(job, conflict, attempts, warning=warning)

    async def _existing(
        self,
        job: Job,
        found: dict[str, Any],
        lookup: Reply,
        attempts: int,
        warning: str | None,
        *,
        ours: bool = False,
    ) -> RowResult:
        """The phone's contact exists. It is this run's own (``created``) when this run sent
        a create for it earlier (``job.ours``: a killed invocation's; ``ours``: an attempt of
        this one) and it holds this row's body; in update mode what differs is PATCHed. The
        journal keeps the body's fingerprint only when Kirim holds exactly this body."""
        contact_id = _id_text(found["id"])
        update = self._mode == "update"
        differs = _changes(found, job.body)  # empty: Kirim holds exactly this row's body
        if job.action is Action.VERIFY and contact_id == job.contact_id:
            warning = None
        if not (differs and update) or contact_id is None:
            mine = (ours or job.ours) and not differs
            status = Status.CREATED if mine else _kept(job, update)
            return self._done(
                job, status, lookup, attempts, contact_id, ours=not differs, warning=warning
            )
        patch = differs
        reply, n = await self._patch(job, contact_id, patch)
        if reply.verdict is Verdict.OK:
            return self._done(
                job, Status.UPDATED, reply, attempts + n, contact_id, ours=True, warning=warning
            )
        return self._patch_failed(job, contact_id, reply, attempts + n)

    def _patch_failed(
        self, job: Job, contact_id: str, reply: Reply, attempts: int
    ) -> RowResult:
        """The update failed, but the contact exists: that much the journal keeps, without a
        fingerprint (whether the PATCH landed is unknown), so the next run looks it up."""
        # no outcome: a rerun, or this run resumed, looks it up and PATCHes it again
        self._journal.record(
            Outcome(job.phone, "done", None, contact_id=contact_id, account=self._account)
        )
        return self._failed(job, reply, attempts)

    async def _patch(self, job: Job, contact_id: str, patch: dict[str, Any]) -> tuple[Reply, int]:
        return await self._sender.call(
            self._writes,
            lambda: self._client.update(
                account=self._account, contact_id=contact_id, phone=job.phone, body=patch
            ),
        )


def _kept(job: Job, update: bool) -> Status:
    """A contact found as it should be: ``unchanged`` when a verify found the journal's own
    contact in update mode, else ``exists``."""
    if update and job.action is Action.VERIFY:
        return Status.UNCHANGED
    return Status.EXISTS


def _said(warning: str | None, then: str) -> str | None:
    return None if warning is None else warning + then


def _not_the_contact(reply: Reply) -> Reply:
    """A lookup answered with something other than this phone's contact: proof of nothing."""
    message = "the lookup answered a record that is not this phone's contact"
    return Reply(
        status=reply.status, error_code=UNREADABLE, error_message=message,
        request_id=reply.request_id,
    )  # fmt: skip


def _id_text(value: object) -> str | None:
    """The contact id Kirim sent, as text we can always store: a number spelled out, a lone
    surrogate (``"\\ud800"`` in the JSON) replaced; anything but a string or number is no id."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).encode("utf-8", "replace").decode("utf-8")
