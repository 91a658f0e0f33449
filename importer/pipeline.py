"""The two jobs, wired from the stages: ``plan`` (no network) and ``run``.

Both read and validate through ``prepare``, the one code path, so a plan never disagrees
with the run it predicts. ``run`` then, before any write: checks the key (``GET /v1/me``,
which also gives the write budget and the organisation the journal is keyed by) and the
account (``GET /v1/accounts``); then streams batches through a pool of workers under the
shared token bucket, journalling every row, and hands each finished batch to the report in
input order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import httpx
import phonenumbers

from importer import __version__, mapping, normalize, source
from importer.client import KirimClient, Verdict
from importer.dispatch import Dispatcher
from importer.journal import Journal
from importer.limiter import Sleep, TokenBucket
from importer.progress import Progress, setup_logging
from importer.records import (
    InputError,
    InputOptions,
    JournalError,
    Plan,
    PlanOptions,
    RunOptions,
    StopRun,
)
from importer.report import Report, RunStats
from importer.sender import Sender, patiently
from importer.upsert import Upserter

VERSIONS = {"importer_version": __version__, "phonenumbers_version": phonenumbers.__version__}


def prepare(options: InputOptions) -> Plan:
    """Open, map and validate the input; raises ``InputError`` before anything is sent."""
    reader = source.open_source(options=options)
    try:
        colmap = mapping.resolve(columns=reader.info.columns, options=options)
    except InputError as exc:  # mapping knows headers, not files: name the file here
        raise InputError(f"{options.path}: {exc}") from None
    batches = normalize.plan_batches(batches=reader.batches(), mapping=colmap, options=options)
    return Plan(
        source=reader.info,
        mapping=colmap,
        batches=iter(batches),
        rows_total=reader.rows,
        reread=reader.batches,
    )


def header_lines(the_plan: Plan) -> list[str]:
    info = the_plan.source
    how = ", ".join(
        f"{k}={v!r}"
        for k, v in (
            ("encoding", info.encoding),
            ("delimiter", info.delimiter),
            ("sheet", info.sheet),
        )
        if v
    )
    lines = [
        f"Input: {info.path} ({info.format}{', ' + how if how else ''}), "
        f"{len(info.columns)} columns",
        "Mapping:",
    ]
    return lines + [f"  {line}" for line in mapping.describe(the_plan.mapping)]


def plan(*, options: PlanOptions, out: TextIO) -> int:
    started = time.monotonic()
    the_plan = prepare(options.input)
    print("\n".join(header_lines(the_plan)), file=out)
    report = Report(directory=options.report_dir, dry_run=True)
    try:
        for batch in the_plan.batches:
            report.add_batch(planned=batch.planned, original=batch.original)
    except BaseException:
        report.abandon()
        raise
    code = report.finish(stats=RunStats(), elapsed_s=time.monotonic() - started, extra=VERSIONS)
    print(report.render(write_per_minute=options.write_per_minute), file=out)
    return code


async def _preflight(
    client: KirimClient, options: RunOptions, sleep: Sleep
) -> tuple[str, dict[str, Any], str]:
    """Check the key and the account before the first write: (org id, rate limits, account)."""
    me = await patiently(client.me, sleep=sleep)
    if me.verdict is not Verdict.OK or not isinstance(me.data, dict):
        raise StopRun(
            f"GET /v1/me failed: {me.status or 'no answer'} {me.error_code}: "
            f"{me.error_message} (check KIRIM_API_KEY and the base URL)"
        )
    org = str(me.data.get("organization", {}).get("id", ""))
    limits = me.data.get("rate_limits") or {}
    accounts = await patiently(client.accounts, sleep=sleep)
    if accounts.verdict is not Verdict.OK or not isinstance(accounts.data, list):
        raise StopRun(f"GET /v1/accounts failed: {accounts.status} {accounts.error_code}")
    rows = [a for a in accounts.data if isinstance(a, dict)]
    listing = "; ".join(
        f"{a.get('phone_number_id')} {a.get('phone_number')} ({a.get('status')})" for a in rows
    )
    connected = [a for a in rows if a.get("status") == "connected" and a.get("phone_number_id")]
    if options.account is None:
        if len(connected) != 1:
            raise StopRun(
                f"{len(connected)} connected accounts: choose one with --account. "
                f"Accounts: {listing or 'none'}"
            )
        return org, limits, str(connected[0]["phone_number_id"])
    match = [a for a in rows if str(a.get("phone_number_id")) == options.account]
    if not match:
        raise StopRun(f"account {options.account} not found. Accounts: {listing or 'none'}")
    if match[0].get("status") not in ("connected", "degraded"):  # degraded still takes contacts
        raise StopRun(f"account {options.account} is {match[0].get('status')}, not connected")
    return org, limits, options.account


MIN_AUTO_CONCURRENCY, MAX_AUTO_CONCURRENCY = 16, 256


def auto_concurrency(write_per_minute: float) -> int:
    """Enough requests in flight to keep the write rate up through ~250 ms round trips and a
    lookup before each create (Little's law: in flight = rate x time per row)."""
    wanted = write_per_minute / 60 * 0.5
    return int(min(max(wanted, MIN_AUTO_CONCURRENCY), MAX_AUTO_CONCURRENCY))


def fingerprint(options: RunOptions, account: str) -> str:
    what = f"{options.input.path.resolve()}\n{account}\n{options.on_existing}"
    return hashlib.sha256(what.encode()).hexdigest()


async def run(
    *,
    options: RunOptions,
    out: TextIO,
    err: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    journal_type: type[Journal] = Journal,
) -> int:
    """Import the file; returns the exit code. Raises ``InputError`` or ``StopRun`` (pre-flight)
    before anything is written to Kirim. ``transport``, ``sleep`` and ``journal_type`` are
    seams for tests and benchmarks."""
    started = time.monotonic()
    the_plan = prepare(options.input)
    logger = setup_logging(stream=err, secrets=(options.api_key,), verbose=options.verbose)
    print("\n".join(header_lines(the_plan)), file=out)
    async with KirimClient(
        base_url=options.base_url,
        api_key=options.api_key,
        transport=transport,
        timeout_s=options.timeout_s,
        max_connections=options.concurrency or MAX_AUTO_CONCURRENCY,
    ) as client:
        org, limits, account = await _preflight(client, options, sleep)
        write_pm = float(limits.get("write_per_minute") or 60)
        if options.max_rate:
            write_pm = min(write_pm, options.max_rate)
        read_pm = float(limits.get("read_per_minute") or write_pm * 10)
        concurrency = options.concurrency or auto_concurrency(write_pm)
        print(
            f"Account {account}, organisation {org}: {write_pm:g} writes/min, "
            f"{read_pm:g} reads/min, {concurrency} in flight, on existing: {options.on_existing}",
            file=out,
        )
        sender = Sender(
            writes=TokenBucket(per_minute=write_pm, sleep=sleep, sync_first=True),
            reads=TokenBucket(per_minute=read_pm, sleep=sleep, sync_first=True),
            sleep=sleep,
        )
        report = Report(directory=options.report_dir, dry_run=False)
        try:
            journal = journal_type(options.state, org=org, account=account)
            run_id = journal.start_run(fingerprint=fingerprint(options, account))
        except BaseException:
            report.abandon()
            raise
        if journal.resumed:
            print(f"Resuming the unfinished run #{run_id} from {options.state}", file=out)
        progress = Progress(stream=err, total=the_plan.rows_total, logger=logger)
        upserter = Upserter(
            client=client,
            sender=sender,
            journal=journal,
            account=account,
            on_existing=options.on_existing,
        )
        work = Dispatcher(
            options=options,
            concurrency=concurrency,
            report=report,
            journal=journal,
            sender=sender,
            upserter=upserter,
            progress=progress,
        )
        try:
            await _drive(work, the_plan, account, run_id)
            if work.stopped and the_plan.reread is not None:
                work.add_unread(the_plan.reread(), phone_column=the_plan.mapping.phone)
        except BaseException:
            with contextlib.suppress(JournalError):  # the first exception is the story
                journal.close()
            report.abandon()
            progress.close()
            raise
        progress.close()
        with _signals(lambda _: None):  # the last outcomes are being written: a Ctrl-C waits
            try:
                journal.close(finished=work.stopped is None)
            except JournalError as exc:  # the report still tells; the rows it missed stay pending
                if work.stopped is not None:
                    logger.warning("%s; rows without a saved outcome are checked on a rerun", exc)
                work.stop(str(exc))
    stats = RunStats(
        requests_sent=sender.stats.requests,
        http_429=sender.stats.http_429,
        retries=sender.stats.retries,
        stopped=work.stopped,
        ignore_codes=frozenset({"limit_reached"}),
    )
    code = report.finish(
        stats=stats,
        elapsed_s=time.monotonic() - started,
        extra={**VERSIONS, "account": account, "journal": str(options.state)},
    )
    print(report.render(journal=options.state), file=out)
    return code


async def _drive(work: Dispatcher, the_plan: Plan, account: str, run_id: int) -> None:
    """Run the workers over the batches; a signal stops intake and lets in-flight rows finish."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if work.stopped and work.stopped.startswith("interrupted"):
            raise SystemExit(130)  # a second Ctrl-C: leave now; the journal makes it safe
        work.stop(f"interrupted by {signal.Signals(signum).name}")

    with _signals(on_signal):
        workers = [asyncio.create_task(work.worker()) for _ in range(work.concurrency)]
        await work.feed(the_plan.batches, account, run_id)
        for _ in workers:
            await work.queue.put(None)
        pending, deadline = set(workers), None
        while pending:  # after a stop, in-flight requests get drain_timeout_s to finish
            _, pending = await asyncio.wait(pending, timeout=0.25)
            if work.stopped:
                deadline = deadline or loop.time() + work.options.drain_timeout_s
                if loop.time() >= deadline:
                    break
        for task in workers:
            task.cancel()
        for ended in await asyncio.gather(*workers, return_exceptions=True):
            if isinstance(ended, Exception):  # a bug: better a traceback than a row unreported
                raise ended
        work.settle_queued()


@contextlib.contextmanager
def _signals(handler: Callable[[int], None]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` (with the signal's number) until the block ends.
    The event loop calls it, so while the block holds the loop, a signal only waits."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, handler, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
