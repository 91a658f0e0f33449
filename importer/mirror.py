"""Label membership that follows the source (``--sync-label NAME``): every row's contact gets
NAME, as ``--label`` puts its names on (``send.labelling``), and the journal notes which
contacts it put NAME on for this source (``Journal.synced``). A contact the journal put NAME
on for this source whose phone is no longer in the source gets NAME detached
(``bulk_label`` with ``operation: detach``, at most 1,000 ids a call, under the write
bucket), once every row has been sent. Nothing else is ever detached: a label someone set
by hand, or one another source's run put on, stays; contacts are never deleted.

Before anything is sent, the source is read once more (``Mirror.before``: which phones it
holds) and what would be detached is counted; more than ``--max-detach`` (a number, or a
share of the label's members from this source; 10% by default) refuses the run (exit 2,
with the numbers): an empty or truncated export must not strip a segment bare. A run that
stops early detaches nothing (it did not see the whole source): the next one does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from importer import guards
from importer.errors import InputError
from importer.options import InputOptions, PlanOptions, RunOptions
from importer.send import adopt
from importer.send.client import PAGE_SIZE, KirimClient, Verdict
from importer.send.journal import Journal, known_phones, synced_members
from importer.send.labels import LABEL_CHUNK, Labeler
from importer.send.limiter import TokenBucket
from importer.send.retry import Sender
from importer.validate import rows
from importer.validate.records import PreparedInput


def source_key(options: InputOptions) -> str:
    """What the journal calls this source: the shrink guard's name for it
    (``guards.source_identity``), or ``-`` for standard input."""
    return guards.source_identity(options) or "-"


def one_account(prepared: PreparedInput, *, sync_labels: Iterable[str], adopt: bool) -> None:
    """``--sync-label`` and ``--adopt`` work on one account: a source with an account column
    (rows routed to several) is refused (``InputError``, exit 2) by ``plan`` and ``run``
    alike, before anything is sent or written."""
    if prepared.mapping.account is None or not (list(sync_labels) or adopt):
        return
    raise InputError(
        f"{prepared.source.shown or prepared.source.path}: column "
        f"{prepared.mapping.account!r} routes rows to several accounts; --sync-label and "
        "--adopt work on one account at a time: split the source by account, or leave those "
        "options out"
    )


def source_phones(prepared: PreparedInput, options: InputOptions) -> set[str]:
    """Every phone the source holds (any row whose phone cell read as a number: a row
    invalid for its email is still in the source), from a second read of it."""
    if prepared.reread is None:
        raise InputError(
            "--sync-label needs an input that can be read twice (a file, not standard "
            "input): which contacts left it is known before anything is sent"
        )
    phones: set[str] = set()
    for batch in rows.validate_batches(
        batches=prepared.reread(), mapping=prepared.mapping, options=options
    ):
        phones.update(batch.rows["phone_number"].drop_nulls().to_list())
    return phones


def allowed(members: int, *, limit: float, percent: bool) -> int:
    """How many of ``members`` a run may detach under ``--max-detach``."""
    return math.floor(members * limit / 100) if percent else int(limit)


def spelled(limit: float, percent: bool) -> str:
    return f"{limit:g}%" if percent else f"{limit:g}"


@dataclass(frozen=True, slots=True)
class Leaving:
    """One ``--sync-label`` name: its members from this source (the journal's) and the
    ones whose phone left the source."""

    label: str
    members: int
    leaving: dict[str, str]  # phone -> contact id
    members_phones: frozenset[str] = frozenset()


@dataclass
class Detached:
    label: str
    rows: list[tuple[str, str]] = field(default_factory=list)  # (phone, contact id) detached
    failed: int = 0  # left on: the call failed (the next run tries again)
    skipped: int = 0  # Kirim skipped them (deleted there since, another team's)


def leaving(
    *, state: Path, source: str, labels: Iterable[str], phones: set[str],
    org: str | None = None, account: str | None = None,
) -> list[Leaving]:  # fmt: skip
    """Per label, the journal's members from ``source`` and those not among ``phones``."""
    out = []
    for label in labels:
        members = synced_members(state, source=source, label=label, org=org, account=account)
        gone = {p: c for p, c in members.items() if p not in phones}
        out.append(Leaving(label, len(members), gone, frozenset(members)))
    return out


def refusal(found: list[Leaving], options: RunOptions, source: str) -> str | None:
    """The message that refuses a run detaching more than ``--max-detach``, if it does;
    ``source`` as people see it (``location.shown``)."""
    limit, percent = options.max_detach, options.max_detach_percent
    over = [
        (f, allowed(f.members, limit=limit, percent=percent))
        for f in found
        if len(f.leaving) > allowed(f.members, limit=limit, percent=percent)
    ]
    if not over:
        return None
    parts = [
        f"--sync-label {f.label!r} would detach {len(f.leaving)} of the {f.members} contacts "
        f"this journal labelled from {source} (more than the {cap} --max-detach "
        f"{spelled(limit, percent)} allows)"
        for f, cap in over
    ]
    most = max(len(f.leaving) for f, _ in over)
    return (
        "; ".join(parts)
        + f". Is the source complete (an empty or truncated export)? If "
        f"they did leave it, rerun with --max-detach {most}."
    )


async def detach(
    *,
    found: list[Leaving],
    labeler: Labeler,
    client: KirimClient,
    sender: Sender,
    writes: TokenBucket,
    journal: Journal,
    account: str,
    source: str,
    logger: logging.Logger,
) -> list[Detached]:
    """Take each label off the contacts that left the source, a chunk at a time."""
    ids = await labeler.label_ids({f.label for f in found if f.leaving})
    out = []
    for f in found:
        done = Detached(f.label)
        out.append(done)
        label_id = ids.get(f.label)
        items = sorted(f.leaving.items())
        if not items:
            continue
        if label_id is None:  # Kirim has no such label: nothing of it is on any contact
            await journal.unsynced(source, f.label, None, [p for p, _ in items])
            continue
        for start in range(0, len(items), LABEL_CHUNK):
            chunk = items[start : start + LABEL_CHUNK]
            reply, _ = await sender.call(
                writes,
                partial(
                    client.bulk_label, account=account, label_id=label_id,
                    contact_ids=[c for _, c in chunk], operation="detach",
                ),
            )  # fmt: skip
            if reply.verdict is not Verdict.OK:
                done.failed += len(chunk)
                logger.warning(
                    "label %r not detached from %d contacts (%s); the next run tries again",
                    f.label, len(chunk), reply.told, extra={"event": "detach_failed", "fields": {
                        "label": f.label, "contacts": len(chunk), "error_code": reply.error_code}},
                )  # fmt: skip
                continue
            applied = reply.data.get("applied", 0) if isinstance(reply.data, dict) else 0
            if isinstance(applied, int) and applied < len(chunk):
                done.skipped += len(chunk) - applied
            await journal.unsynced(source, f.label, label_id, [p for p, _ in chunk])
            done.rows.extend(chunk)
    return out


def detached_frame(done: list[Detached]) -> pl.DataFrame:
    """results.csv's rows for the detached contacts: phone, contact id, label."""
    return pl.DataFrame(
        [(p, c, d.label) for d in done for p, c in d.rows],
        schema={"phone_number": pl.String, "contact_id": pl.String, "labels": pl.String},
        orient="row",
    )


def summary(found: list[Leaving], done: list[Detached]) -> dict[str, object]:
    """summary.json's ``detached`` count and, per label, its members and what left."""
    by_label = {d.label: d for d in done}
    return {
        "detached": sum(len(d.rows) for d in done),
        "sync_labels": {
            f.label: {
                "members_before": f.members,
                "left_source": len(f.leaving),
                "detached": len(by_label[f.label].rows) if f.label in by_label else 0,
                "detach_failed": by_label[f.label].failed if f.label in by_label else 0,
            }
            for f in found
        },
    }


def plan_summary(
    options: PlanOptions, phones: set[str], valid: set[str], out: TextIO
) -> dict[str, Any]:
    """What ``--sync-label`` would attach and detach (against the journal's members from this
    source, every organisation's: a plan knows none), and what a first sync costs either way
    (``--adopt``); printed, and returned for summary.json."""
    extra: dict[str, Any] = {}
    state = options.state
    if options.sync_labels:
        source = source_key(options.input)
        found = (
            leaving(state=state, source=source, labels=options.sync_labels, phones=phones)
            if state is not None
            else [Leaving(name, 0, {}) for name in options.sync_labels]
        )
        limit, percent = options.max_detach, options.max_detach_percent
        extra["sync_labels"] = {}
        for f in found:
            cap = allowed(f.members, limit=limit, percent=percent)
            extra["sync_labels"][f.label] = {
                "members_before": f.members,
                "would_attach": len(valid - set(f.members_phones)),
                "left_source": len(f.leaving),
                "max_detach_allows": cap,
            }
            if len(f.leaving) > cap:  # as a run's refusal says it (``refusal``)
                print(
                    f"--sync-label {f.label!r}: a run would refuse: it would detach "
                    f"{len(f.leaving)} of the {f.members} contacts the journal labelled from "
                    f"this source, more than the {cap} --max-detach {spelled(limit, percent)} "
                    "allows",
                    file=out,
                )
    if options.adopt:
        knows = known_phones(state, valid) if state is not None else 0
        print("\n".join(adopt.cost_lines(len(valid), journal_knows=knows)), file=out)
        extra["first_sync"] = {
            "lookups": len(valid) - knows,
            "journal_knows": knows,
            "reads_if_account_holds_these": -(-len(valid) // PAGE_SIZE),
        }
    return extra
