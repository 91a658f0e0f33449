"""The two jobs, wired from the stages: ``plan`` (no network, but for one ``GET /v1/accounts``
when a file's account column can be checked: ``send.accounts``) and ``run``.

Both read and validate through ``prepare``, the one code path, so a plan never disagrees
with the run it predicts. ``run`` then, before any write, checks the key and the account
(``send.preflight``); then streams batches through a pool of workers under the shared token
bucket, journalling every row, and hands each finished batch to the report in input order.
Every resource of a run (the HTTP client, the report's files, the journal, the progress bar,
the signal handlers) is entered on one ``AsyncExitStack``; the run's ``Stop`` alone says
whether and why it ended early.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import httpx
import phonenumbers
import polars as pl

from importer import __version__, mirror, notify
from importer.errors import ImporterError, InputError, JournalError, Refused, StopRun
from importer.guards import FailureWatch, Guards, Spool, plan_lines, remember
from importer.options import InputOptions, PlanOptions, RunOptions
from importer.page import Context
from importer.progress import LOGGER, Progress, logging_to, redacting
from importer.read import location, source
from importer.records import Status, ValidatedBatch
from importer.redact import redact
from importer.report import Report, RunStats, duration, status_counts
from importer.send import adopt
from importer.send.accounts import plan_listing
from importer.send.client import KirimClient, Reply
from importer.send.dispatch import Dispatcher, Listener, not_sent, unread_batches
from importer.send.journal import Journal, cells_read_otherwise, finish_run, save_run
from importer.send.labelling import Labelling
from importer.send.labels import Labeler
from importer.send.labeltally import LabelTally
from importer.send.limiter import TokenBucket
from importer.send.lock import journal_lock
from importer.send.preflight import Preflight, preflight
from importer.send.records import RowResult, RunRecord
from importer.send.renumber import Comparison, Renumbering, reading
from importer.send.retry import LABEL_POLICY, RetryPolicy, Sender
from importer.send.stop import Sleep, Stop, Why
from importer.send.upsert import Upserter
from importer.timeline import Timeline
from importer.validate import mapping, rows
from importer.validate.accounts import Routing
from importer.validate.records import PreparedInput
from importer.window import Clock, Window, runs_needed

VERSIONS = {"importer_version": __version__, "phonenumbers_version": phonenumbers.__version__}
MIN_AUTO_CONCURRENCY, MAX_AUTO_CONCURRENCY = 16, 256
_T = TypeVar("_T")
_HANDLE_SIGNALS: contextvars.ContextVar[bool] = contextvars.ContextVar("signals", default=True)


def prepare(options: InputOptions) -> PreparedInput:
    """Open, map and validate the input; raises ``InputError`` before anything is sent."""
    reader = source.open_source(options=options)
    try:
        colmap = mapping.resolve(columns=reader.info.columns, options=options)
    except InputError as exc:  # mapping knows headers, not files: name the file here
        raise InputError(f"{location.shown(options)}: {exc}") from None
    if options.row_key is not None and options.row_key not in reader.info.columns:
        reader.close()
        raise InputError(
            f"{location.shown(options)}: --row-key {options.row_key!r} is not a column; the "
            f"columns are {', '.join(repr(c) for c in reader.info.columns)}"
        )
    batches = rows.validate_batches(batches=reader.batches(), mapping=colmap, options=options)
    return PreparedInput(
        source=reader.info,
        mapping=colmap,
        batches=iter(batches),
        rows_total=reader.rows,
        reread=reader.batches,
    )


def header_lines(prepared: PreparedInput) -> list[str]:
    info = prepared.source
    how = ", ".join(
        f"{k}={v!r}"
        for k, v in (
            ("encoding", info.encoding),
            ("delimiter", info.delimiter),
            ("sheet", info.sheet),
            ("header_line", info.header_line if info.header_line != 1 else None),
            ("compression", info.compression),
        )
        if v
    )
    lines = [
        f"Input: {info.shown or info.path} ({info.format}{', ' + how if how else ''}), "
        f"{len(info.columns)} columns",
        *(f"  warning: {note}" for note in info.notes),
        "Mapping:",
    ]
    return lines + [f"  {line}" for line in mapping.describe(prepared.mapping)]


def plan(*, options: PlanOptions, out: TextIO) -> int:
    started = time.monotonic()
    prepared = prepare(options.input)
    print("\n".join(header_lines(prepared)), file=out)
    mirror.one_account(prepared, sync_labels=options.sync_labels, adopt=options.adopt)
    checked: dict[str, Any] = {}
    if prepared.mapping.account is not None:  # a file with an account column
        prepared, checked = plan_routing(prepared, options)
        print(f"Accounts: {checked['accounts_checked_how']}", file=out)
    known: list[tuple[str, str]] = []
    if options.state is not None:  # a plan knows no organisation: every one's cells
        known = cells_read_otherwise(options.state, reading=reading(options.input))
    comparison = Comparison(known)
    phones: set[str] = set()  # every phone of the source (--sync-label, --adopt)
    valid: set[str] = set()
    mirrored = bool(options.sync_labels or options.adopt)
    with Report(
        directory=options.report_dir, dry_run=True, row_key=options.input.row_key
    ) as report:
        for batch in prepared.batches:
            comparison.add(batch.rows)
            report.add_batch(rows=batch.rows, original=batch.original)
            if mirrored:
                phones.update(batch.rows["phone_number"].drop_nulls().to_list())
                is_valid = batch.rows["status"] == Status.VALID.value
                valid.update(batch.rows.filter(is_valid)["phone_number"].to_list())
    context = Context(options=options, write_per_minute=options.write_per_minute)
    elapsed = time.monotonic() - started
    guarded, guard_facts = plan_lines(options, report.counts)
    extra = {
        **VERSIONS, **comparison.result().summary(verbose=options.verbose), "guards": guard_facts,
        **checked,
    }
    if mirrored:
        extra.update(mirror.plan_summary(options, phones, valid, out))
    code = report.finish(stats=RunStats(), elapsed_s=elapsed, extra=extra, context=context)
    if options.verify:
        print(verify_cost(report.counts.get("valid", 0), options.write_per_minute), file=out)
    for line in guarded:
        print(line, file=out)
    if options.window_s is not None and (writes := report.counts.get("valid", 0)):
        runs = runs_needed(writes, options.write_per_minute, options.window_s)
        print(f"Time window ({options.window}): {runs}.", file=out)
    print(report.render(write_per_minute=options.write_per_minute), file=out)
    return code


def plan_routing(
    prepared: PreparedInput, options: PlanOptions
) -> tuple[PreparedInput, dict[str, Any]]:
    """A plan of a file with an account column: its cells routed against Kirim's list when a
    key is set (``send.accounts``), else unchecked; and what summary.json says of it."""
    listing = plan_listing(base_url=options.base_url, api_key=options.api_key)
    default = options.account
    if default is None and listing.accounts is not None:  # as a run: the only connected one
        connected = [a for a in listing.accounts if a.status == "connected" and a.usable]
        default = connected[0].phone_number_id if len(connected) == 1 else None
    routing = Routing(
        column=prepared.mapping.account or "",
        default=default,
        region=options.input.default_region,
        accounts=listing.accounts,
    )
    said, listed = listing.said, listing.accounts
    if options.account and listed is not None and not any(
        a.usable and a.phone_number_id == options.account for a in listed
    ):
        said += f"; --account {options.account} is no connected account: a run would stop"
    checked = {"accounts_checked": listing.accounts is not None, "accounts_checked_how": said}
    return routed(prepared, options.input, routing), checked


def verify_cost(rows: int, write_per_minute: float) -> str:
    """What ``run --verify`` costs at most: one lookup per row the journal holds done, under
    the read budget (Kirim's is ten times the write budget)."""
    reads = write_per_minute * 10
    return (
        f"--verify: at most {rows} lookups (one per row the journal holds as done), about "
        f"{duration(rows / (reads / 60))} at {reads:.0f} reads/min; contacts deleted in "
        "Kirim are created again (writes)."
    )


def auto_concurrency(write_per_minute: float) -> int:
    """Enough requests in flight to keep the write rate up through ~250 ms round trips and a
    lookup before each create (Little's law: in flight = rate x time per row)."""
    wanted = write_per_minute / 60 * 0.5
    return int(min(max(wanted, MIN_AUTO_CONCURRENCY), MAX_AUTO_CONCURRENCY))


def fingerprint(options: RunOptions, account: str) -> str:
    what = f"{location.identity(options.input)}\n{account}\n{options.on_existing}"
    return hashlib.sha256(what.encode()).hexdigest()


class _Listener:
    """What the dispatcher tells, passed on: to the progress bar, the log and the report."""

    def __init__(self, progress: Progress, report: Report, logger: logging.Logger) -> None:
        self._progress = progress
        self._report = report
        self._logger = logger

    def rows_settled(self, status: str, n: int) -> None:
        self._progress.advance(status, n)

    def row_failed(self, result: RowResult, phone: str) -> None:
        self._logger.warning(
            "row %d %s failed: %s %s (%s)",
            result.row_number,
            phone,
            result.http_status or "-",
            result.error_code,
            result.error_message,
            extra={"event": "row_failed", "fields": {
                "row_number": result.row_number, "http_status": result.http_status,
                "error_code": result.error_code, "retryable": result.retryable,
            }},
        )  # fmt: skip

    def batch_done(
        self, rows: pl.DataFrame, original: pl.DataFrame, results: Sequence[RowResult]
    ) -> None:
        self._report.add_batch(rows=rows, original=original, results=results)


def _waiting(logger: logging.Logger) -> Callable[[float, Reply], None]:
    """Tell a person about each long wait, once per wait rather than once per row."""
    told_until = 0.0

    def tell(seconds: float, reply: Reply) -> None:
        nonlocal told_until
        now = time.monotonic()
        if now + seconds > told_until + 1.0:
            told_until = now + seconds
            logger.warning("waiting %.0f s before retrying (%s)", seconds, reply.told,
                           extra={"event": "wait", "fields": {
                               "wait_s": round(seconds, 1), "http_status": reply.status,
                               "error_code": reply.error_code}})  # fmt: skip

    return tell


async def run(
    *,
    options: RunOptions,
    out: TextIO,
    err: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    journal_type: type[Journal] = Journal,
    signals: bool = True,
    log_handler: bool = True,
    summary: dict[str, Any] | None = None,
    clock: Clock = time.monotonic,
) -> int:
    """Import the file; returns the exit code. Raises ``InputError`` (or ``JournalError``,
    ``ReportError``) before anything is sent. A pre-flight that Kirim refuses is a stop like
    any other: every row is reported ``not_attempted``, exit 3. ``transport``, ``sleep`` and
    ``journal_type`` are seams for tests and benchmarks. ``signals``: SIGINT and SIGTERM stop
    the run (the command line; only the main thread may); ``log_handler``: log lines go to
    ``err`` (the command line), else to the ``importer`` logger as the host set it up. Log
    records are redacted either way. ``summary``, when given, is filled with summary.json's
    content (even when the file could not be written). ``clock`` (monotonic seconds) is the
    time window's (``--max-duration``, ``--until``), a seam for tests."""
    secrets: tuple[str, ...] = (options.api_key,) if options.api_key else ()
    secrets += location.secrets_of(options.input)  # a source URL's or URI's password, query
    signalled = _HANDLE_SIGNALS.set(signals)  # the run's own tasks inherit this context
    try:
        with contextlib.ExitStack() as scope:
            logger = (
                scope.enter_context(
                    logging_to(
                        stream=err,
                        verbose=options.verbose,
                        quiet=options.quiet,
                        log_format=options.log_format,
                    )
                )
                if log_handler
                else logging.getLogger(LOGGER)
            )
            scope.enter_context(redacting(secrets=secrets, mask_contacts=not options.verbose))
            ended: dict[str, Any] = {} if summary is None else summary
            try:
                code = await _run(
                    options=options, out=out, err=err, transport=transport, sleep=sleep,
                    journal_type=journal_type, signals=signals, logger=logger, summary=ended,
                    clock=clock,
                )  # fmt: skip
            except ImporterError as exc:  # refused before sending: a night that failed too
                refused = 3 if isinstance(exc, StopRun) else 2
                told: dict[str, Any] = {"stopped": f"refused: {exc}"}
                if isinstance(exc, Refused):  # a guard rail: which, and its numbers
                    told.update(guard=exc.guard, guards=exc.facts)
                await _notify(options, told, refused, logger)
                raise
            await _notify(options, ended, code, logger)
            return code
    finally:
        _HANDLE_SIGNALS.reset(signalled)


async def _notify(
    options: RunOptions, summary: dict[str, Any], code: int, logger: logging.Logger
) -> None:
    """``--notify``: the run's outcome to its URLs (a failure there is only a warning)."""
    account = summary.get("account")
    await notify.after_run(
        urls=options.notify, notify_on=options.notify_on, summary=summary, exit_code=code,
        source=location.shown(options.input),
        account=account if isinstance(account, str) and account else options.account,
        report_dir=str(options.report_dir), logger=logger,
        secrets=(options.api_key,) if options.api_key else (),
    )  # fmt: skip


def _json_event(
    logger: logging.Logger, options: RunOptions, level: int, event: str, message: str,
    fields: dict[str, Any],
) -> None:
    """An event that only the JSON log carries (the text log has the closing lines)."""
    if options.log_format == "json":
        logger.log(level, "%s", message, extra={"event": event, "fields": fields})


async def _run(
    *,
    options: RunOptions,
    out: TextIO,
    err: TextIO,
    transport: httpx.AsyncBaseTransport | None,
    sleep: Sleep,
    journal_type: type[Journal],
    signals: bool,
    logger: logging.Logger,
    summary: dict[str, Any] | None,
    clock: Clock = time.monotonic,
) -> int:
    started = time.monotonic()
    window = Window.opening(
        max_duration_s=options.max_duration_s, until=options.until, started=clock(), clock=clock
    )
    prepared = prepare(options.input)
    say = _Say(out, quiet=options.quiet)
    say("\n".join(header_lines(prepared)))
    mirror.one_account(prepared, sync_labels=options.sync_labels, adopt=options.adopt)
    stop = Stop()
    policy = RetryPolicy(max_attempts=options.max_attempts, max_wait_s=options.max_wait_s)
    sender = Sender(stop=stop, policy=policy, sleep=sleep, on_wait=_waiting(logger))
    # labels have their own short tries, outside the retry budget: they never stop an import
    label_sender = Sender(stop=stop, policy=LABEL_POLICY, sleep=sleep, on_wait=_waiting(logger))
    guards = Guards(options)
    with journal_lock(options.state):  # one run per journal, its history record included
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                KirimClient(
                    base_url=options.base_url,
                    api_key=options.api_key,
                    transport=transport,
                    timeout_s=options.timeout_s,
                    max_connections=options.concurrency or MAX_AUTO_CONCURRENCY,
                )
            )
            report = stack.enter_context(
                Report(
                    directory=options.report_dir,
                    dry_run=False,
                    on_failure=lambda why: stop.request(Why.OUTPUT, why),
                    row_key=options.input.row_key,
                )
            )
            several = prepared.mapping.account is not None  # rows name their accounts
            try:
                found = await preflight(
                    client=client, sender=sender, account=options.account, several=several
                )
                if several:  # routed against Kirim's list before any row is validated
                    routing = run_routing(prepared, found, options.input.default_region)
                    prepared = routed(prepared, options.input, routing)
            except StopRun as exc:  # nothing was written: every row is reported not_attempted
                stop.request(Why.SERVER, str(exc))
                _not_attempted(prepared, report)
                found = None
            if found is not None and guards.armed():  # the whole file counted first (its
                # rows routed: an account Kirim lacks is invalid), and sent from the spool
                prepared = guards.count(prepared, stack.enter_context(Spool()))
            if found is not None:
                the_run = RunContext(
                    options=options, prepared=prepared, found=found, client=client,
                    report=report, sender=sender, label_sender=label_sender, stop=stop,
                    say=say, err=err, logger=logger, sleep=sleep, journal_type=journal_type,
                    guards=guards, window=window,
                )  # fmt: skip
                sent = await _send_all(stack, the_run)
        with _signals(lambda _: None):  # the report is being written: a Ctrl-C waits for it
            stats = RunStats(
                requests_sent=sender.stats.requests + label_sender.stats.requests,
                http_429=sender.stats.http_429 + label_sender.stats.http_429,
                retries=sender.stats.retries + label_sender.stats.retries,
                stopped=stop.reason,
                ignore_codes=frozenset({"limit_reached"}),
                labels_failed=sent.labels.failed if found is not None else 0,
            )
            extra = {
                **VERSIONS, "journal": str(options.state),
                "stop_kind": stop.why.value if stop.why is not None else None,
            }  # fmt: skip
            if found is None:
                code = report.finish(stats=stats, elapsed_s=time.monotonic() - started, extra=extra)
            else:
                renumbered = sent.renumbered.summary(verbose=options.verbose)
                code = report.finish(
                    stats=stats,
                    elapsed_s=time.monotonic() - started,
                    extra={**extra, "account": found.account, "run_id": sent.run_id,
                           **renumbered, "labels": sent.labels.summary(),
                           "guards": guards.facts(), **sent.extra},
                    context=sent.context,
                )
            if summary is not None:
                summary.update(report.summary)
            if stop.reason and options.log_format == "json":
                kind = stop.why.value if stop.why is not None else None
                stopped = {"event": "stopped", "fields": {
                    "reason": stop.reason, "exit_code": code, "stop_kind": kind}}  # fmt: skip
                logger.error("stopped: %s", stop.reason, extra=stopped)
            elif stop.reason:  # on standard error too: a cron log keeps it
                print(f"kirim-import: stopped: {redact(stop.reason)}", file=err)
            _json_event(
                logger, options, logging.INFO, "summary",
                f"finished: exit {code}, report {options.report_dir}",
                {**notify.document(summary=report.summary, exit_code=code,
                                   stopped=stop.reason, source=location.shown(options.input),
                                   account=None if found is None else found.account,
                                   report_dir=str(options.report_dir))["summary"],
                 "exit_code": code, "stopped": stop.reason,
                 "stop_kind": report.summary.get("stop_kind"),
                 "report_dir": str(options.report_dir)},
            )  # fmt: skip
            resumable = None if found is None else _resumable_in(options)  # a run to resume
            print(report.render(journal=resumable), file=out)
            if found is not None:
                _keep_record(options, sent.run_id, report, logger)
                if report.summary["stopped"] is None:  # the source's baseline (shrink guard)
                    try:
                        remember(options.state, guards.source, org=found.org,
                                 account=found.account, summary=report.summary,
                                 run_id=sent.run_id)  # fmt: skip
                    except JournalError as exc:
                        logger.warning("%s; the shrink guard keeps the previous baseline", exc,
                                       extra={"event": "journal_warning"})  # fmt: skip
    return code


@dataclass(frozen=True, slots=True)
class _Sent:
    run_id: int
    context: Context  # what the report page shows of the run
    renumbered: Renumbering  # rows sent as another number than the journal knew (allowed)
    labels: LabelTally  # wanted labels: attached, in place, failed by reason
    extra: dict[str, Any] = field(default_factory=dict)  # summary.json: adopted, detached


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a run is made of once its pre-flight passed: its options and prepared input,
    what Kirim said of the key (``found``), and the resources ``run`` entered (client,
    report, senders, stop, where it tells things); ``sleep`` and ``journal_type`` are the
    test seams. One value handed to the stages that need them."""

    options: RunOptions
    prepared: PreparedInput
    found: Preflight
    client: KirimClient
    report: Report
    sender: Sender
    label_sender: Sender  # labels' own short tries, outside the retry budget
    stop: Stop
    say: _Say
    err: TextIO
    logger: logging.Logger
    sleep: Sleep
    journal_type: type[Journal]
    guards: Guards | None = None  # --max-invalid, the shrink guard, --max-failed
    window: Window | None = None  # --max-duration, --until


async def _send_all(stack: contextlib.AsyncExitStack, the_run: RunContext) -> _Sent:
    """The run after its pre-flight: journal, workers, labels; every row to the report."""
    options, prepared, found, stop = the_run.options, the_run.prepared, the_run.found, the_run.stop
    client, report, sender, label_sender = (
        the_run.client, the_run.report, the_run.sender, the_run.label_sender
    )  # fmt: skip
    say, err, logger, sleep = the_run.say, the_run.err, the_run.logger, the_run.sleep
    journal_type = the_run.journal_type
    write_pm = found.write_per_minute or 60.0
    if options.max_rate:
        write_pm = min(write_pm, options.max_rate)
    read_pm = found.read_per_minute or write_pm * 10
    concurrency = options.concurrency or auto_concurrency(write_pm)
    several = prepared.mapping.account is not None
    where = (
        accounts_line(prepared.mapping.account or "", found)
        if several
        else f"Account {found.account}"
    )
    say(
        f"{where}, organisation {found.org}: {write_pm:g} writes/min, "
        f"{read_pm:g} reads/min, {concurrency} in flight, on existing: {options.on_existing}"
    )
    if the_run.guards is not None:  # before the journal writes anything
        the_run.guards.check_shrink(org=found.org, account=found.account)
    renumbered = renumbering(prepared, options, found)
    if renumbered.rows and not options.allow_renumber:  # before the journal writes anything
        raise InputError(renumbered.refusal(verbose=options.verbose))
    if renumbered.rows:
        lines = "; ".join(renumbered.lines(verbose=options.verbose))
        say(f"Renumbered (--allow-renumber): {renumbered.rows} rows go as new numbers: {lines}")
    syncing = _sync_check(prepared, options, found)  # --sync-label: refused before any write
    journal = journal_type(
        options.state,
        org=found.org,
        account=found.account,
        on_failure=lambda why: stop.request(Why.JOURNAL, why),
        reading=reading(options.input),
    )
    run_id = journal.start_run(fingerprint=fingerprint(options, found.account))
    stack.enter_context(_closing(journal, stop, logger))
    if journal.resumed:
        say(f"Resuming the unfinished run #{run_id} from {options.state}")
    _json_event(
        logger, options, logging.INFO, "run_started",
        f"run #{run_id}: account {found.account}, {write_pm:g} writes/min, {concurrency} in flight",
        {"run_id": run_id, "resumed": journal.resumed, "account": found.account,
         "org": found.org, "write_per_minute": write_pm, "read_per_minute": read_pm,
         "concurrency": concurrency, "on_existing": options.on_existing,
         "rows_total": prepared.rows_total, "source": location.shown(options.input),
         "account_column": prepared.mapping.account,  # rows routed by it: to these accounts
         "accounts": [a.phone_number_id for a in found.accounts if a.usable] if several else None},
    )  # fmt: skip
    progress = stack.enter_context(
        contextlib.closing(
            Progress(
                stream=err,
                total=prepared.rows_total,
                logger=logger,
                quiet=options.quiet,
                bar=options.log_format == "text",
            )
        )
    )
    timeline = stack.enter_context(
        Timeline(
            read=lambda: (
                progress.counts["created"],
                sender.stats.requests,
                sender.stats.http_429,
                sender.stats.retries,
            )
        ).sampling()
    )
    writes = TokenBucket(per_minute=write_pm, sleep=sleep, sync_first=True, stop=stop)
    reads = TokenBucket(per_minute=read_pm, sleep=sleep, sync_first=True, stop=stop)
    upserter = Upserter(
        client=client,
        sender=sender,
        writes=writes,
        reads=reads,
        journal=journal,
        account=found.account,
        on_existing=options.on_existing,
    )
    listener: Listener = _Listener(progress, report, logger)
    if the_run.guards is not None and (limit := the_run.guards.failure_limit()) is not None:
        given = options.max_failed.text if options.max_failed else str(limit)
        listener = FailureWatch(listener, limit=limit, given=given, stop=stop)
    labelling: Labelling | None = None
    tally = LabelTally()
    labeler: Labeler | None = None
    source = mirror.source_key(options.input)
    if options.labels or prepared.mapping.labels or options.sync_labels:
        labeler = Labeler(
            client=client, sender=label_sender, writes=writes, reads=reads, journal=journal,
            account=found.account, flag_names=options.labels, tally=tally,
        )  # fmt: skip
        labelling = Labelling(
            labeler=labeler, stop=stop, listener=listener, routed=several,
            sync_names=options.sync_labels,
            on_synced=lambda name, items: journal.synced(source, name, items),
        )  # fmt: skip
    extra: dict[str, Any] = {}
    if options.adopt or (
        not several  # (the page-through reads one account)
        and options.on_existing != "create"
        and not options.verify  # (it looks every row the journal holds up anyway)
        and adopt.worth_paging(rows=prepared.rows_total, journal_knows_account=journal.holds_any())
    ):
        adopted = await adopt.adopt(
            client=client, sender=sender, reads=reads, journal=journal, account=found.account,
            max_reads=None if options.adopt else prepared.rows_total,
        )  # fmt: skip
        how = "every page" if adopted.complete else f"stopped early: {adopted.why}"
        say(f"Adopted {adopted.contacts} contacts of the account into the journal from "
            f"{adopted.reads} pages ({how})")  # fmt: skip
        extra["adopted"] = {"reads": adopted.reads, "contacts": adopted.contacts,
                            "complete": adopted.complete, "asked": options.adopt}  # fmt: skip
        _json_event(
            logger, options, logging.INFO, "adopted",
            f"adopted {adopted.contacts} contacts from {adopted.reads} pages ({how})",
            {**extra["adopted"], "why": None if adopted.complete else adopted.why},
        )  # fmt: skip
    work = Dispatcher(
        options=options,
        concurrency=concurrency,
        account=found.account,
        run_id=run_id,
        stop=stop,
        journal=journal,
        upserter=upserter,
        listener=listener,
        on_finished=labelling.put if labelling is not None else None,
        routed=several,
    )
    watcher = (
        asyncio.create_task(the_run.window.watch(stop, sleep)) if the_run.window else None
    )
    try:
        await _drive(work, _stop_on_input_error(prepared.batches, stop), stop, labelling)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    if stop.requested and prepared.reread is not None:
        unread = _stop_on_input_error(iter(prepared.reread()), stop)
        work.unread(unread, phone_column=prepared.mapping.phone)
    if syncing and labeler is not None:
        done: list[mirror.Detached] = []
        if not stop.requested:  # a run that did not see the whole source detaches nothing
            try:
                done = await mirror.detach(
                    found=syncing, labeler=labeler, client=client, sender=label_sender,
                    writes=writes, journal=journal, account=found.account, source=source,
                    logger=logger,
                )  # fmt: skip
            except JournalError as exc:
                stop.request(Why.JOURNAL, str(exc))
        report.add_detached(mirror.detached_frame(done), failed=sum(d.failed for d in done))
        extra.update(mirror.summary(syncing, done))
        _json_event(logger, options, logging.INFO, "detached",
                    f"--sync-label: {extra['detached']} contacts detached"
                    + (" (none: the run stopped early)" if stop.requested else ""),
                    {"detached": extra["detached"], "sync_labels": extra["sync_labels"],
                     "stopped_early": stop.requested})  # fmt: skip
    context = Context(
        options=options,
        write_per_minute=write_pm,
        journal=_resumable_in(options),
        settings={"writes per minute": write_pm, "in flight": concurrency, "run": run_id},
        timeline=timeline.samples,
    )
    return _Sent(run_id, context, renumbered, tally, extra)


def _sync_check(
    prepared: PreparedInput, options: RunOptions, found: Preflight
) -> list[mirror.Leaving]:
    """``--sync-label``: which contacts each name would be detached from, counted before
    anything is sent; more than ``--max-detach`` refuses the run (``InputError``, exit 2)."""
    if not options.sync_labels:
        return []
    phones = mirror.source_phones(prepared, options.input)
    source = mirror.source_key(options.input)
    found_leaving = mirror.leaving(
        state=options.state, source=source, labels=options.sync_labels, phones=phones,
        org=found.org, account=found.account,
    )  # fmt: skip
    shown = location.shown(options.input)  # (never the identity: it is no message)
    if (why := mirror.refusal(found_leaving, options, shown)) is not None:
        raise Refused(why, guard="max_detach", facts={"sync_labels": {
            f.label: {"members": f.members, "leaving": len(f.leaving)} for f in found_leaving}})
    return found_leaving


def renumbering(prepared: PreparedInput, options: RunOptions, found: Preflight) -> Renumbering:
    """The valid rows whose phone cell the journal knows under another number. Only when the
    journal holds cells read otherwise than this run reads them is the file read (and
    validated) once more for it, before anything is sent: a stable nightly job pays nothing."""
    several = prepared.mapping.account is not None  # every account of the organisation
    known = cells_read_otherwise(
        options.state, reading=reading(options.input), org=found.org,
        account=None if several else found.account,
    )  # fmt: skip
    comparison = Comparison(known)
    if not comparison.needed:
        return comparison.result()
    if prepared.reread is None:
        raise InputError("the input cannot be read twice: its phones cannot be compared first")
    again = rows.validate_batches(
        batches=prepared.reread(), mapping=prepared.mapping, options=options.input,
        routing=prepared.routing,
    )  # fmt: skip
    return comparison.add_all(again)


def run_routing(prepared: PreparedInput, found: Preflight, region: str | None) -> Routing:
    """How a run routes the rows of a file with an account column: against the accounts the
    pre-flight listed, empty cells to ``--account`` or the only connected account."""
    return Routing(
        column=prepared.mapping.account or "",
        default=found.account or None,
        region=region,
        accounts=found.accounts,
    )


def routed(prepared: PreparedInput, options: InputOptions, routing: Routing) -> PreparedInput:
    """``prepared`` validated with ``routing`` (a file with an account column): its batches
    are made again from the file, before any was read (validation is lazy)."""
    if prepared.reread is None:
        raise InputError("the input cannot be read again: its accounts cannot be routed")
    close = getattr(prepared.batches, "close", None)
    if close is not None:
        close()  # (not started: nothing was read or parsed)
    batches = rows.validate_batches(
        batches=prepared.reread(), mapping=prepared.mapping, options=options, routing=routing
    )
    return dataclasses.replace(prepared, batches=iter(batches), routing=routing)


def accounts_line(column: str, found: Preflight) -> str:
    """Where a file with an account column goes, for the line the run prints first."""
    usable = [a.phone_number_id for a in found.accounts if a.usable]
    default = found.account or "none (empty cells are missing_account)"
    return (
        f"Accounts from column {column!r} ({len(usable)} connected: "
        f"{', '.join(str(a) for a in usable) or 'none'}; default {default})"
    )


def _resumable_in(options: RunOptions) -> Path | None:
    """The journal a rerun resumes this run from (once the run is in it: past the pre-flight):
    none after ``--sandbox``, whose rerun starts a fresh server (what this run made there is
    gone with it)."""
    return None if options.sandbox else options.state


def _not_attempted(prepared: PreparedInput, report: Report) -> None:
    """Every row of a run that sent nothing, reported ``failed`` / ``not_attempted``: straight
    from the file when it can be read again, else through validation."""
    if prepared.reread is not None:
        raw = prepared.reread()
        for rows, original in unread_batches(raw, after=0, phone_column=prepared.mapping.phone):
            report.add_batch(rows=rows, original=original)
        return
    for batch in prepared.batches:
        valid = batch.rows.filter(pl.col("status") == Status.VALID.value)["row_number"]
        report.add_batch(
            rows=batch.rows,
            original=batch.original,
            results=[not_sent(r, "not_attempted", "the run stopped first") for r in valid],
        )


class _Say:
    """What the run tells on its standard output as it goes; ``quiet`` (cron) keeps only the
    closing lines, which are printed directly."""

    def __init__(self, out: TextIO, *, quiet: bool) -> None:
        self._out, self._quiet = out, quiet

    def __call__(self, text: str) -> None:
        if not self._quiet:
            print(text, file=self._out)


def _keep_record(options: RunOptions, run_id: int, report: Report, logger: logging.Logger) -> None:
    """How the run ended, into the journal for ``history`` (a failure there is only logged:
    the report is written, and the rows' outcomes are in the journal already)."""
    s = report.summary
    counts = status_counts(s)
    if held := s["reasons"].get("limit_reached", 0):  # held back by --limit: not failures
        counts = {**counts, "failed": counts.get("failed", 0) - held, "limit_reached": held}
    record = RunRecord(
        file=location.shown(options.input),
        mode=options.on_existing,
        counts=counts,
        requests=s["requests_sent"],
        http_429=s["http_429"],
        retries=s["retries"],
        elapsed_s=s["elapsed_s"],
        exit_code=s["exit_code"],
        report_dir=str(options.report_dir),
        stopped=s["stopped"],
    )
    if s["stopped"] is None:  # its report is written, nothing stopped it
        try:
            finish_run(options.state, run_id=run_id)
        except JournalError as exc:
            logger.warning("%s; the run is not marked finished: the next run of this file "
                           "resumes it", exc, extra={"event": "journal_warning"})  # fmt: skip
    try:
        save_run(options.state, run_id=run_id, record=record)
    except JournalError as exc:
        logger.warning("%s; the run is missing from history", exc,
                       extra={"event": "journal_warning"})  # fmt: skip


def _stop_on_input_error(items: Iterator[_T], stop: Stop) -> Iterator[_T]:
    """``items`` until reading the input fails mid-run: then the run stops like any other
    stop (every row read is reported, exit 3), rather than ending with an exception."""
    try:
        yield from items
    except InputError as exc:
        stop.request(Why.INPUT, f"the input could not be read further: {exc}")


@contextlib.contextmanager
def _closing(journal: Journal, stop: Stop, logger: logging.Logger) -> Iterator[None]:
    """Close the journal when the run ends: after an error quietly (the first exception is
    the story); else writing the last outcomes with signals held. A failure there stops the
    run (the rows it could not record stay ``pending``, and a rerun checks them). The run is
    finished only once its report is written (``_keep_record``)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(JournalError):
            journal.close()
        raise
    with _signals(lambda _: None):  # the last outcomes are being written: a Ctrl-C waits
        try:
            journal.close()
        except JournalError as exc:
            if stop.requested:
                logger.warning("%s; rows without a saved outcome are checked on a rerun", exc,
                               extra={"event": "journal_warning"})  # fmt: skip
            stop.request(Why.JOURNAL, str(exc))


async def _drive(
    work: Dispatcher, batches: Iterator[ValidatedBatch], stop: Stop, labelling: Labelling | None
) -> None:
    """Run the workers over the batches (and the labels step over the finished ones); a
    signal stops intake and lets in-flight rows finish for at most ``drain_timeout_s``."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.why is Why.SIGNAL:
            raise SystemExit(130)  # a second Ctrl-C: leave now; the journal makes it safe
        stop.request(Why.SIGNAL, f"interrupted by {signal.Signals(signum).name}")

    async def finish(tasks: list[asyncio.Task[None]]) -> None:
        """Wait for ``tasks``; after a stop, in-flight requests get drain_timeout_s."""
        pending, deadline = set(tasks), None
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.25)
            if stop.requested:
                deadline = deadline or loop.time() + work.options.drain_timeout_s
                if loop.time() >= deadline:
                    break
        for task in tasks:
            task.cancel()
        for ended in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(ended, Exception):  # a bug: better a traceback than a row unreported
                raise ended

    with _signals(on_signal):
        workers = [asyncio.create_task(work.worker()) for _ in range(work.concurrency)]
        reporter = asyncio.create_task(labelling.run() if labelling else asyncio.sleep(0))
        feeder = asyncio.create_task(work.feed(batches))
        watched: set[asyncio.Task[None]] = {feeder, reporter, *workers}
        while not feeder.done():  # a worker or the reporter that dies (a bug) ends the feed:
            done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {feeder}:  # never a wait on a queue nobody empties
                if not task.cancelled() and (failure := task.exception()) is not None:
                    feeder.cancel()
                    raise failure
        await feeder
        for _ in workers:
            await work.queue.put(None)
        await finish(workers)
        work.settle_queued()
        if labelling is not None:
            labelling.close()
        await finish([reporter])


@contextlib.contextmanager
def _signals(handler: Callable[[int], None]) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``handler`` (with the signal's number) until the block ends.
    The event loop calls it, so while the block holds the loop, a signal only waits. Nothing
    is installed for a run the Python API started (``run(signals=False)``): a host's
    signals are its own."""
    if not _HANDLE_SIGNALS.get():
        yield
        return
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, handler, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
