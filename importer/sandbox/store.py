"""In-memory contacts and labels of the sandbox organisation, plus request statistics.

Mutations happen on the server's event-loop thread; every method takes one lock so snapshot
readers in other threads (tests, the embedding ``Sandbox``) always see consistent data.
Contacts live per account in a list in creation order (no deletes exist in the API: only
``delete_contact``, someone deleting one in Kirim's app, removes one), which keeps positional
cursors stable while a client pages: rows created meanwhile appear at the end, never shifting
rows it has not seen yet. Labels are never deleted, so their cursors are stable too.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from typing import Any

from importer.sandbox.ids import now_iso, ulid


class Store:
    """Contacts, labels and counters; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contacts: dict[str, dict[str, Any]] = {}
        self._contact_account: dict[str, str] = {}
        self._by_account: dict[str, list[str]] = {}
        self._by_phone: dict[tuple[str, str], list[str]] = {}
        self._creations: Counter[str] = Counter()
        self._labels: dict[str, dict[str, Any]] = {}
        self._label_names: set[tuple[str | None, str]] = set()
        self._contact_labels: dict[str, set[str]] = {}
        self._label_asks: Counter[str] = Counter()  # contact id -> bulk_label calls naming it
        self._status_counts: Counter[int] = Counter()
        self._route_counts: Counter[tuple[str, str]] = Counter()

    # -- contacts -------------------------------------------------------------------------

    def phone_exists(self, account: str, phone: str) -> bool:
        """O(1) check whether ``phone`` already has a contact under ``account``."""
        with self._lock:
            return (account, phone) in self._by_phone

    def create_contact(
        self,
        *,
        account: str,
        account_phone: str | None,
        phone: str,
        name: str | None,
        email: str | None,
        metadata: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Store a new contact and count a creation for its phone; returns the API object."""
        stamp = now_iso()
        contact: dict[str, Any] = {
            "id": "ctc_" + ulid(),
            "object": "contact",
            "phone_number": phone,
            "name": name,
            "email": email,
            "metadata": metadata if metadata is not None else {},
            "whatsapp_account": {"phone_number": account_phone},
            "created_at": stamp,
            "updated_at": stamp,
        }
        cid = contact["id"]
        with self._lock:
            self._contacts[cid] = contact
            self._contact_account[cid] = account
            self._by_account.setdefault(account, []).append(cid)
            self._by_phone.setdefault((account, phone), []).append(cid)
            self._creations[phone] += 1
        return contact

    def delete_contact(self, contact_id: str) -> bool:
        """Remove a contact, as a person deleting it in Kirim's app would (creation counts
        stay: they record what happened). False if there was none."""
        with self._lock:
            contact = self._contacts.pop(contact_id, None)
            if contact is None:
                return False
            account = self._contact_account.pop(contact_id)
            self._by_account[account].remove(contact_id)
            ids = self._by_phone[(account, contact["phone_number"])]
            ids.remove(contact_id)
            if not ids:
                del self._by_phone[(account, contact["phone_number"])]
            self._contact_labels.pop(contact_id, None)
            return True

    def other_contact(
        self, account: str, *, phone: object, contact_id: str | None
    ) -> dict[str, Any] | None:
        """A contact of ``account`` that has neither this phone nor this id (for the
        ``wrong_contact`` fault), or None."""
        with self._lock:
            for cid in self._by_account.get(account, ()):
                contact = self._contacts[cid]
                if cid != contact_id and contact["phone_number"] != phone:
                    return copy.deepcopy(contact)
        return None

    def get_contact(self, account: str, contact_id: str) -> dict[str, Any] | None:
        """The contact if it exists under ``account``."""
        with self._lock:
            if self._contact_account.get(contact_id) != account:
                return None
            return self._contacts[contact_id]

    def update_contact(self, contact_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply validated ``changes`` (name, email, metadata patch) to a contact.

        ``metadata`` is a shallow MERGE: given keys overwrite existing ones, a key set to
        ``null`` is removed, keys not mentioned stay. The contract does not say whether
        Kirim merges or replaces; merging is the safer reading for an importer that only
        wants to add fields, and it matches Stripe-style metadata semantics.
        ``updated_at`` moves only when something actually changed.
        """
        with self._lock:
            contact = self._contacts[contact_id]
            changed = False
            for key in ("name", "email"):
                if key in changes and contact[key] != changes[key]:
                    contact[key] = changes[key]
                    changed = True
            if "metadata" in changes:
                merged = dict(contact["metadata"] or {})
                for key, value in changes["metadata"].items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                if merged != contact["metadata"]:
                    contact["metadata"] = merged
                    changed = True
            if changed:
                contact["updated_at"] = now_iso()
            return contact

    def page(
        self,
        *,
        account: str,
        phone: str | None,
        search: str | None,
        start: int,
        limit: int,
        label_id: str | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` matching contacts from position ``start`` and the next position.

        With ``phone`` the scan runs over the phone index (O(1) to find, then only the rows of
        that phone); otherwise over the account's append-only list. The next position is
        ``None`` when no further match exists.
        """
        with self._lock:
            ids = (
                self._by_phone.get((account, phone), [])
                if phone is not None
                else self._by_account.get(account, [])
            )
            needle = search.casefold() if search else None
            out: list[dict[str, Any]] = []
            pos = start
            while pos < len(ids):
                contact = self._contacts[ids[pos]]
                pos += 1
                if needle is not None and not _matches(contact, needle):
                    continue
                if label_id is not None and label_id not in self._contact_labels.get(
                    ids[pos - 1], ()
                ):
                    continue
                if len(out) == limit:
                    return out, pos - 1
                out.append(contact)
            return out, None

    # -- labels ---------------------------------------------------------------------------

    def labels(self) -> list[dict[str, Any]]:
        """All labels in creation order."""
        with self._lock:
            return list(self._labels.values())

    def create_label(
        self, *, name: str, color: str | None, team_id: str | None
    ) -> dict[str, Any] | None:
        """Create a label; ``None`` when the name is already taken in that team."""
        with self._lock:
            if (team_id, name) in self._label_names:
                return None
            label = {
                "id": "lbl_" + ulid(),
                "object": "label",
                "name": name,
                "color": color,
                "team_id": team_id,
                "created_at": now_iso(),
            }
            self._labels[str(label["id"])] = label
            self._label_names.add((team_id, name))
            return label

    def label_page(self, *, start: int, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` labels from position ``start`` (creation order) and the next
        position, ``None`` when there are no more."""
        with self._lock:
            rows = list(self._labels.values())[start : start + limit]
            nxt = start + limit
            return rows, (nxt if nxt < len(self._labels) else None)

    def label(self, label_id: str) -> dict[str, Any] | None:
        """The label with that id, if any."""
        with self._lock:
            return self._labels.get(label_id)

    def bulk_label(
        self,
        *,
        contact_ids: list[str],
        label_id: str,
        attach: bool,
        account_teams: dict[str, str | None],
    ) -> dict[str, int]:
        """Attach or detach a label; see ``handlers.bulk_label`` for the counting rules."""
        with self._lock:
            team = self._labels[label_id]["team_id"]
            applied = cross_org = mismatch = 0
            for cid in dict.fromkeys(contact_ids):
                self._label_asks[cid] += 1
                account = self._contact_account.get(cid)
                if account is None:
                    cross_org += 1
                    continue
                if team is not None and account_teams.get(account) != team:
                    mismatch += 1
                    continue
                attached = self._contact_labels.setdefault(cid, set())
                if attach:
                    attached.add(label_id)
                else:
                    attached.discard(label_id)
                applied += 1
            return {
                "applied": applied,
                "skipped_cross_org": cross_org,
                "skipped_team_mismatch": mismatch,
            }

    # -- statistics -----------------------------------------------------------------------

    def count(self, method: str, route: str, status: int) -> None:
        """Record one answered request (status 0 = connection dropped without a response)."""
        with self._lock:
            self._status_counts[status] += 1
            self._route_counts[(method, route)] += 1

    def contacts(self) -> list[dict[str, Any]]:
        """Deep copies of every contact in creation order, with sandbox-only ``labels``."""
        with self._lock:
            out = []
            for cid, contact in self._contacts.items():
                row = copy.deepcopy(contact)
                row["labels"] = sorted(self._contact_labels.get(cid, ()))
                out.append(row)
            return out

    def label_asks(self) -> dict[str, int]:
        """Contact id -> how many ``bulk_label`` calls named it (attach or detach, applied or
        skipped): what a client sent, counted where it arrived."""
        with self._lock:
            return dict(self._label_asks)

    def creations_by_phone(self) -> dict[str, int]:
        """Phone -> number of create events that took effect."""
        with self._lock:
            return dict(self._creations)

    def status_counts(self) -> dict[int, int]:
        """HTTP status -> number of responses."""
        with self._lock:
            return dict(self._status_counts)

    def route_counts(self) -> dict[tuple[str, str], int]:
        """(method, route template) -> number of requests."""
        with self._lock:
            return dict(self._route_counts)


def _matches(contact: dict[str, Any], needle: str) -> bool:
    name = contact["name"] or ""
    email = contact["email"] or ""
    return needle in name.casefold() or needle in email.casefold()
