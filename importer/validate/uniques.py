"""Phones and emails are parsed once per UNIQUE value: a bounded cache and a process pool.

A phone costs ~11-30 us (``phonefast``'s quick path; ~45 us where ``phonenumbers`` decides
alone), so planning a big file is mostly that (plain emails never come here: ``cells.fast_email``).
``UniqueParser`` remembers results across batches (bounded), and when a batch brings more than
``threshold`` values it has not seen it parses them in a pool of worker processes, in
chunks, while the caller goes on reading and finishing other batches (``submit`` returns at
once, ``collect`` waits). Fewer values are parsed in this process, at ``submit``: small files
and tests stay fast to start and deterministic.

Both paths run ``parse_values``, so their results are the same by construction. Workers are
started with "spawn" (safe beside polars' threads; a fork of a threaded process is not) and
import only this module, ``phones`` and ``emails``. This module imports no polars.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from importer.options import POOL_THRESHOLD, BareNumbers
from importer.validate.emails import check_email
from importer.validate.phones import parse_phone

# e164, code, problem, region, region_source, number_type, warning
PhoneRow = tuple[
    str | None, str | None, str | None, str | None, str | None, str | None, str | None
]
EmailRow = tuple[str | None, str | None]  # (normalised, reason)
Parsed = tuple[list[PhoneRow], list[EmailRow]]

# parsed values kept per kind across batches (phones, emails), ~200 bytes each: as many as
# a 100k-row file holds, so memory stops growing with the file there (500k: ~100 MiB more
# on 2M rows, for < 1% hits on bench/gen.py's files either way)
CACHE_LIMIT = 100_000
_CHUNK = 8_192  # values per job: small enough to balance, big enough to amortise pickling
_MAX_WORKERS = 4
_V = TypeVar("_V")


def parse_values(
    *,
    phones: list[str],
    emails: list[str],
    default_region: str | None,
    require_mobile: bool,
    bare_numbers: BareNumbers = "refuse",
) -> Parsed:
    """``parse_phone`` and ``check_email`` over lists of values (run in a worker or here)."""
    rows: list[PhoneRow] = [
        (r.e164, r.code, r.problem, r.region, r.region_source, r.number_type, r.warning)
        for r in (
            parse_phone(
                p,
                default_region=default_region,
                require_mobile=require_mobile,
                bare_numbers=bare_numbers,
            )
            for p in phones
        )
    ]
    return rows, [check_email(e) for e in emails]


def default_workers() -> int:
    """Worker processes for big batches: none on one core, else one per core up to 4."""
    cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, _MAX_WORKERS)


@dataclass
class Pending:
    """One batch's values, some maybe still being parsed by the pool."""

    phones: list[str]
    emails: list[str]
    cached_phones: dict[str, PhoneRow]  # hits at submit: the cache may be emptied meanwhile
    cached_emails: dict[str, EmailRow]
    jobs: list[tuple[list[str], list[str], Future[Parsed] | Parsed]] = field(default_factory=list)


class UniqueParser:
    """Parses unique phone and email values, cached across batches; ``close()`` ends the pool."""

    def __init__(
        self,
        *,
        default_region: str | None,
        require_mobile: bool,
        bare_numbers: BareNumbers = "refuse",
        workers: int | None = None,
        threshold: int = POOL_THRESHOLD,
        cache_limit: int = CACHE_LIMIT,
    ) -> None:
        self.default_region = default_region
        self.require_mobile = require_mobile
        self.bare_numbers: BareNumbers = bare_numbers
        self.workers = default_workers() if workers is None else workers
        self.threshold = threshold
        self.cache_limit = cache_limit
        self.phones: dict[str, PhoneRow] = {}
        self.emails: dict[str, EmailRow] = {}
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, *, phones: list[str], emails: list[str]) -> Pending:
        """Start parsing the values (each list without repeats) that are not cached."""
        hit_phones, new_phones = _split(self.phones, phones)
        hit_emails, new_emails = _split(self.emails, emails)
        pending = Pending(phones, emails, hit_phones, hit_emails)
        total = len(new_phones) + len(new_emails)
        if total == 0:
            return pending
        if self.workers < 2 or total <= self.threshold:
            parsed = self._parse(new_phones, new_emails)
            pending.jobs.append((new_phones, new_emails, parsed))
            return pending
        pool = self._start_pool()
        parts = max(self.workers, math.ceil(total / _CHUNK))
        # a submit may start a worker process; one started with SIGINT blocked never sees a
        # terminal's Ctrl-C, not even while it boots (the main process stops the run in order)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for i in range(parts):
                ps = new_phones[i * len(new_phones) // parts : (i + 1) * len(new_phones) // parts]
                es = new_emails[i * len(new_emails) // parts : (i + 1) * len(new_emails) // parts]
                future = pool.submit(
                    parse_values, phones=ps, emails=es, default_region=self.default_region,
                    require_mobile=self.require_mobile, bare_numbers=self.bare_numbers,
                )  # fmt: skip
                pending.jobs.append((ps, es, future))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return pending

    def collect(self, pending: Pending) -> tuple[list[PhoneRow], list[EmailRow]]:
        """Wait for ``pending``; its results, aligned with the lists given to ``submit``."""
        got_phones, got_emails = pending.cached_phones, pending.cached_emails
        for ps, es, job in pending.jobs:
            phone_rows, email_rows = job.result() if isinstance(job, Future) else job
            got_phones.update(zip(ps, phone_rows, strict=True))
            got_emails.update(zip(es, email_rows, strict=True))
        phones = [got_phones[p] for p in pending.phones]
        emails = [got_emails[e] for e in pending.emails]
        _remember(self.phones, got_phones, self.cache_limit)
        _remember(self.emails, got_emails, self.cache_limit)
        return phones, emails

    def close(self) -> None:
        """Stop the worker processes (waiting for them), if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> UniqueParser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _parse(self, phones: list[str], emails: list[str]) -> Parsed:
        return parse_values(
            phones=phones, emails=emails, default_region=self.default_region,
            require_mobile=self.require_mobile, bare_numbers=self.bare_numbers,
        )  # fmt: skip

    def _start_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._pool


def _split(cache: dict[str, _V], values: list[str]) -> tuple[dict[str, _V], list[str]]:
    """(the cached results among ``values``, the values not cached)."""
    hits: dict[str, _V] = {}
    new: list[str] = []
    for value in values:
        hit = cache.get(value)
        if hit is None:
            new.append(value)
        else:
            hits[value] = hit
    return hits, new


def _remember(cache: dict[str, _V], new: dict[str, _V], limit: int) -> None:
    """Add ``new`` to ``cache``, emptied first when it would grow past ``limit``."""
    if len(cache) + len(new) > limit:
        cache.clear()
    if len(new) <= limit:
        cache.update(new)
