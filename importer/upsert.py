"""One valid row's way to Kirim: look it up (unless told not to), create or update it, and
journal the outcome. Every answer becomes a ``Sent`` value; none raises.

``on_existing``:
- ``skip`` (default): look the phone up first (read budget); found means ``exists``.
- ``update``: look up; if found, PATCH the fields that differ (``updated``), else ``exists``.
- ``create``: no lookup; one request per row.
The dispatcher decides per row (``Job.lookup``): a row left ``pending`` by an interrupted
run is re-sent with the same key and no lookup, so Kirim replays it; one whose key may have
expired, or whose body changed, is always looked up first, whatever the mode: that is what
keeps a late rerun from creating a contact twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from importer.client import KirimClient, Reply, Verdict, idempotency_key
from importer.journal import Journal
from importer.records import Outcome, Sent, Status
from importer.sender import Sender


@dataclass(frozen=True, slots=True)
class Job:
    row_number: int
    phone: str
    body: dict[str, Any]
    key: str
    lookup: bool  # look the phone up before creating


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


def make_job(*, row_number: int, account: str, body: dict[str, Any], lookup: bool) -> Job:
    key = idempotency_key(account=account, body=body)
    return Job(row_number, body["phone_number"], body, key, lookup)


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


class Upserter:
    def __init__(
        self,
        *,
        client: KirimClient,
        sender: Sender,
        journal: Journal,
        account: str,
        on_existing: Literal["skip", "update", "create"],
    ) -> None:
        self._client = client
        self._sender = sender
        self._journal = journal
        self._account = account
        self._mode = on_existing
        self.stop_reply: Reply | None = None  # the first answer that means: stop the run

    def _failed(self, job: Job, reply: Reply, attempts: int, *, create: bool = False) -> Sent:
        """A row that did not succeed. Only a create that Kirim refused for good (a 4xx) is
        journalled ``failed``; anything else leaves the journal as it was."""
        verdict = reply.verdict
        if verdict is Verdict.STOP and self.stop_reply is None:
            self.stop_reply = reply
        retryable = verdict in (Verdict.RETRY, Verdict.STOP)
        if create and not retryable and 400 <= reply.status < 500:  # a no: nothing created
            self._journal.record(
                Outcome(
                    job.phone,
                    "failed",
                    None,
                    http_status=reply.status or None,
                    error_code=reply.error_code,
                    request_id=reply.request_id,
                )
            )
        # else the row stays "pending" in the journal: the request may have created the
        # contact (a lost answer, any 5xx, an answer we cannot read), so a rerun re-sends the
        # same key or looks the phone up first; never sends it as new
        return Sent(
            job.row_number,
            Status.FAILED,
            http_status=reply.status or None,
            error_code=reply.error_code,
            error_message=reply.error_message,
            request_id=reply.request_id,
            attempts=attempts,
            retryable=retryable,
        )

    def _done(
        self, job: Job, status: Status, reply: Reply, attempts: int, found_id: object
    ) -> Sent:
        contact_id = _id_text(found_id)
        self._journal.record(
            Outcome(
                job.phone,
                "done",
                status.value,
                contact_id=contact_id,
                http_status=reply.status,
                request_id=reply.request_id,
            )
        )
        return Sent(
            job.row_number,
            status,
            contact_id=contact_id,
            http_status=reply.status,
            request_id=reply.request_id,
            attempts=attempts,
            replayed=reply.replayed,
        )

    async def handle(self, job: Job) -> Sent:
        attempts = 0
        if job.lookup:
            reply, attempts = await self._sender.call(
                "read", lambda: self._client.find_by_phone(account=self._account, phone=job.phone)
            )
            if reply.verdict is not Verdict.OK:
                return self._failed(job, reply, attempts)
            found = reply.data[0] if isinstance(reply.data, list) and reply.data else None
            if isinstance(found, dict):
                return await self._existing(job, found, reply, attempts)
        reply, n = await self._sender.call(
            "write", lambda: self._client.create(account=self._account, body=job.body, key=job.key)
        )
        attempts += n
        if reply.verdict is Verdict.OK:
            data = reply.data if isinstance(reply.data, dict) else {}
            return self._done(job, Status.CREATED, reply, attempts, data.get("id"))
        if reply.verdict is Verdict.EXISTS:
            return self._done(job, Status.EXISTS, reply, attempts, None)
        return self._failed(job, reply, attempts, create=True)

    async def _existing(
        self, job: Job, found: dict[str, Any], lookup: Reply, attempts: int
    ) -> Sent:
        contact_id = found.get("id")
        patch = _changes(found, job.body) if self._mode == "update" else {}
        if not patch or not isinstance(contact_id, str):
            return self._done(job, Status.EXISTS, lookup, attempts, contact_id)
        reply, n = await self._sender.call(
            "write",
            lambda: self._client.update(account=self._account, contact_id=contact_id, body=patch),
        )
        if reply.verdict is Verdict.OK:
            return self._done(job, Status.UPDATED, reply, attempts + n, contact_id)
        # the update failed, but the contact exists: that much the journal keeps
        self._journal.record(Outcome(job.phone, "done", Status.EXISTS.value, contact_id=contact_id))
        return self._failed(job, reply, attempts + n)


def _id_text(value: object) -> str | None:
    """The contact id Kirim sent, as text we can always store: a number spelled out, a lone
    surrogate (``"\\ud800"`` in the JSON) replaced; anything but a string or number is no id."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).encode("utf-8", "replace").decode("utf-8")
