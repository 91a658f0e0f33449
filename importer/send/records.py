"""What the sending stage hands on: what the journal holds for a phone, what it records, and
what became of each row that reached this stage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from importer.records import Status


@dataclass(frozen=True, slots=True)
class Entry:
    """A phone's line in the journal (``Journal.entries``)."""

    phone: str
    state: str  # pending | done | failed
    idem_key: str
    sent_at: float
    run_id: int
    outcome: str | None
    contact_id: str | None
    request_id: str | None
    needs_lookup: bool  # it may exist under an older key: only a lookup can tell
    body_hash: str | None = None  # the body Kirim last accepted for it (``body_fingerprint``)
    labels: frozenset[str] = frozenset()  # label ids attached to its contact by our runs
    create_run: int | None = None  # the run that last sent a create for it (may have landed)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A row's final answer, as the journal records it."""

    phone: str
    state: str  # done | failed | pending (unproven: look it up before any new create)
    outcome: str | None  # created | updated | exists, for done
    contact_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    request_id: str | None = None
    body_hash: str | None = None  # set when Kirim's answer shows it holds exactly our body
    account: str | None = None  # the account it is under; None: the journal's own


@dataclass(frozen=True, slots=True)
class RowResult:
    """What became of one valid row in a run (joined onto its validated row by the report).
    Rows the run never sent (stopped first, past ``--limit``) have one too."""

    row_number: int
    status: Status  # created | updated | unchanged | exists | failed
    contact_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    attempts: int = 0
    replayed: bool = False
    retryable: bool | None = None
    labels: str | None = None  # the labels its contact has, of those wanted (send.labels)
    warning: str | None = None  # e.g. a label that could not be attached


@dataclass(frozen=True, slots=True)
class RunRecord:
    """How a run ended, kept in the journal's ``runs`` table (``journal.save_run``) for
    ``kirim-import history``."""

    file: str
    mode: str  # --on-existing
    counts: Mapping[str, int]  # by status, as in summary.json
    requests: int
    http_429: int
    retries: int
    elapsed_s: float
    exit_code: int
    report_dir: str
    stopped: str | None = None  # why its last invocation stopped early, if it did


@dataclass(frozen=True, slots=True)
class RunLine:
    """A run as the journal has it (``journal.runs``). ``record`` is None when the run left
    none: killed, still going, or run by 0.2.0 (which kept no record)."""

    run_id: int
    org: str
    account: str
    started_at: float
    finished_at: float | None  # set when the run ended without stopping early
    ended_at: float | None  # when its record was written
    record: RunRecord | None  # counts of the last invocation; requests and time summed
    invocations: int = 0  # how many invocations left a record (a killed one leaves none)
    stops: tuple[str, ...] = ()  # why each invocation that stopped early stopped, in order
