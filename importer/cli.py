"""The command line: parse, check, build the frozen options, hand off to the pipeline.

    kirim-import plan FILE [input options]           validate and report, no network
    kirim-import run FILE [run options]              import into Kirim (or --sandbox)
    kirim-import sandbox [options]                   serve the Kirim-compatible sandbox
    kirim-import history [--state FILE] [--json]     the runs a journal holds, newest first

Exit codes: 0 all rows fine; 1 some rows invalid or failed; 2 usage or input error, nothing
sent; 3 stopped early (auth, account, signal, retry budget); 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal, cast
from urllib.parse import urlsplit

import phonenumbers

from importer import __version__, history, pipeline
from importer.errors import ImporterError, InputError, StopRun
from importer.options import InputOptions, MetadataPolicy, PlanOptions, RunOptions
from importer.read.source import FORMATS
from importer.redact import KEY_SHAPE, redact
from importer.validate.mapping import load_mapping_file
from importer.validate.records import FIELDS

DEFAULT_BASE_URL = "https://api.kirim.chat/v1"
REPORTS = Path("reports")  # the default report folders go here, the journal beside them
JOURNAL_FILE = "kirim-journal.sqlite"


class UsageError(Exception):
    pass


def _input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        help="CSV, TSV, Parquet, XLSX/XLSM/XLSB/XLS/ODS (also .gz .bz2 .xz .zst), or - for stdin",
    )
    g = parser.add_argument_group("reading and mapping")
    g.add_argument(
        "--format",
        choices=FORMATS,
        help="what the file is, whatever its name says (needed for - , standard input)",
    )
    g.add_argument(
        "--encoding", help="text encoding (default: UTF-8, else detected; this always wins)"
    )
    g.add_argument("--delimiter", help="field delimiter: , ; tab | (default: detect)")
    g.add_argument(
        "--sheet", help="a workbook's sheet: its name (any case) or 1-based position "
        "(default: the first visible)"
    )
    g.add_argument(
        "--header-row",
        type=int,
        metavar="N",
        help="the header's line in a text file, or row in a sheet (1-based; default: the "
        "first non-blank)",
    )
    g.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=HEADER",
        help="map a field (phone_number, name, email, labels) to a column; repeatable",
    )
    g.add_argument("--mapping", type=Path, metavar="FILE", help="TOML or JSON field->header map")
    g.add_argument(
        "--metadata",
        default="all",
        metavar="none|all|COL,COL",
        help="which other columns go to metadata (default: all)",
    )
    g = parser.add_argument_group("validation")
    g.add_argument(
        "--default-region",
        metavar="CC",
        help="ISO country for national numbers such as 0812... (e.g. ID)",
    )
    g.add_argument("--require-mobile", action="store_true", help="reject fixed-line numbers")
    g.add_argument(
        "--invalid-email",
        choices=("fail", "drop"),
        default="fail",
        help="an invalid email fails the row, or is dropped with a warning",
    )
    g.add_argument(
        "--keep",
        choices=("first", "last"),
        default="first",
        help="which of in-file duplicates to keep",
    )
    parser.add_argument("--report-dir", type=Path, help="where reports go (default: reports/...)")


def build_parser() -> argparse.ArgumentParser:
    from importer.sandbox import command as sandbox_command

    parser = argparse.ArgumentParser(
        prog="kirim-import",
        description="Bulk contact importer for the Kirim WhatsApp Business API: validate a "
        "spreadsheet (plan), import it exactly once (run), or serve a local Kirim (sandbox).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kirim-import {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="validate a file and report what a run would do")
    _input_arguments(plan)
    plan.add_argument(
        "--write-per-minute",
        type=int,
        default=600,
        help="the account's write budget, for the time estimate (default 600)",
    )
    plan.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="the journal whose phone cells to compare with (default: a run's default "
        "journal, when it exists)",
    )
    plan.add_argument(
        "-v", "--verbose", action="store_true", help="show renumbered rows' phones unmasked"
    )
    run = sub.add_parser(
        "run",
        help="import a file into Kirim",
        epilog="The API key is read from KIRIM_API_KEY, never from a flag.",
    )
    _input_arguments(run)
    g = run.add_argument_group("sending")
    g.add_argument("--account", metavar="PHONE_NUMBER_ID", help="default: the only connected one")
    g.add_argument("--base-url", help=f"default: $KIRIM_BASE_URL, else {DEFAULT_BASE_URL}")
    g.add_argument(
        "--sandbox",
        action="store_true",
        help="start the local sandbox and import into it (no key needed)",
    )
    g.add_argument(
        "--on-existing",
        choices=("skip", "update", "create"),
        default="skip",
        help="a phone Kirim has already: skip it (default), update what changed (nightly "
        "jobs: only what changed since the last run is sent), or create without looking",
    )
    g.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME",
        help="attach this Kirim label to every contact the import wrote; repeatable",
    )
    g.add_argument("--concurrency", type=int, help="requests in flight (default: from the rate)")
    g.add_argument("--max-rate", type=float, metavar="N", help="writes per minute, at most")
    g.add_argument("--limit", type=int, metavar="N", help="send only the first N valid rows")
    g.add_argument("--state", type=Path, metavar="FILE", help="the journal (SQLite)")
    g.add_argument(
        "--allow-renumber",
        action="store_true",
        help="send rows whose phone cell the journal knows under another number (a changed "
        "--default-region) as their new numbers; without it such a run sends nothing (exit 2)",
    )
    g.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    g.add_argument(
        "--max-attempts",
        type=int,
        default=8,
        metavar="N",
        help="tries per request, the first included (default 8); a row whose tries run out "
        "is reported failed and retryable",
    )
    g.add_argument(
        "--max-wait",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="stop (exit 3) when Kirim asks to wait longer than this (default 900)",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="log unmasked contact details")
    g.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and the closing lines (cron)"
    )
    sandbox = sub.add_parser("sandbox", help="serve a Kirim-compatible sandbox on loopback")
    sandbox_command.add_arguments(sandbox)
    past = sub.add_parser("history", help="the runs a journal holds, newest first")
    past.add_argument(
        "--state", type=Path, metavar="FILE", help=f"default: {REPORTS / JOURNAL_FILE}"
    )
    past.add_argument("--json", action="store_true", help="one JSON object per line")
    for command in (plan, run, sandbox, past):
        command.set_defaults(usage_error=command.error)
    return parser


def _metadata(value: str) -> MetadataPolicy:
    if value in ("all", "none"):
        return cast(MetadataPolicy, value)
    return tuple(c.strip() for c in value.split(",") if c.strip())


def input_options(args: argparse.Namespace) -> InputOptions:
    field_map = dict(load_mapping_file(args.mapping)) if args.mapping else {}
    for item in args.map:
        field, sep, header = item.partition("=")
        if not sep or field.strip() not in FIELDS or not header.strip():
            raise UsageError(
                f"--map {item!r}: expected FIELD=HEADER with FIELD one of {', '.join(FIELDS)}"
            )
        field_map[field.strip()] = header.strip()
    delimiter = args.delimiter
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)  # checked in read/
    region = args.default_region.upper() if args.default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise UsageError(
            f"--default-region {args.default_region!r} is not an ISO country code "
            "that phone numbering knows (e.g. ID, US, GB, BR)"
        )
    if args.header_row is not None and args.header_row < 1:
        raise UsageError(f"--header-row {args.header_row}: the first line is 1")
    return InputOptions(
        path=args.file,
        encoding=args.encoding,
        delimiter=delimiter,
        sheet=args.sheet,
        header_row=args.header_row,
        format=args.format,
        field_map=field_map,
        metadata=_metadata(args.metadata),
        default_region=region,
        require_mobile=args.require_mobile,
        invalid_email=cast(Literal["fail", "drop"], args.invalid_email),
        keep=cast(Literal["first", "last"], args.keep),
    )


def _labels(names: list[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(n.strip() for n in names))
    for name in out:
        if not 1 <= len(name) <= 50:
            raise UsageError(f"--label {name!r}: a label name has 1 to 50 characters")
    return out


def report_dir(args: argparse.Namespace, command: str) -> Path:
    if args.report_dir is not None:
        return cast(Path, args.report_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem = "stdin" if str(args.file) == "-" else args.file.name.split(".")[0] or args.file.stem
    base = REPORTS / f"{stem}-{command}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if KEY_SHAPE.search(url):
        raise UsageError("the base URL holds a Kirim API key: set it in KIRIM_API_KEY only")
    if parts.username is not None or parts.password is not None:
        raise UsageError("the base URL holds credentials (user@ or user:password@): remove them")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"base URL {url!r}: expected https://host/v1")
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UsageError(f"base URL {url!r}: plain http is only allowed to loopback; use https")
    return url.rstrip("/")


def default_state(report_dir: Path, *, sandbox: bool) -> Path:
    """The journal beside the report folders; a --sandbox run's own, inside its folder (each
    sandbox is a fresh organisation: its entries would only clutter the real journal)."""
    return report_dir / "journal.sqlite" if sandbox else report_dir.parent / JOURNAL_FILE


def plan_state(state: Path | None, report_dir: Path) -> Path | None:
    """The journal a plan compares phone cells with: ``--state``, else the one a run with
    these options would use, when it exists."""
    if state is None:
        default = default_state(report_dir, sandbox=False)
        return default if default.is_file() else None
    if not state.is_file():
        raise UsageError(f"--state {state}: no journal there")
    return state


def run_options(args: argparse.Namespace) -> RunOptions:
    if args.concurrency is not None and not 1 <= args.concurrency <= 1024:
        raise UsageError("--concurrency must be between 1 and 1024")
    if args.max_rate is not None and args.max_rate <= 0:
        raise UsageError("--max-rate must be positive")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    if not 1 <= args.max_attempts <= 50:
        raise UsageError("--max-attempts must be between 1 and 50")
    if args.max_wait < 0:
        raise UsageError("--max-wait must be 0 or more")
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must be 0 or more")
    key = os.environ.get("KIRIM_API_KEY", "").strip()  # a CRLF .env file leaves a \r
    base_url = args.base_url or os.environ.get("KIRIM_BASE_URL") or DEFAULT_BASE_URL
    if args.account is not None and not re.fullmatch(r"\d{6,20}", args.account):
        raise UsageError("--account takes a phone_number_id: 6 to 20 digits")
    if args.sandbox and args.base_url:
        raise UsageError("--sandbox starts its own server: leave out --base-url")
    if not args.sandbox:
        if not key:
            raise UsageError("set KIRIM_API_KEY to your Kirim API key (or use --sandbox)")
        if not key.isascii() or not key.isprintable() or " " in key:
            raise UsageError("KIRIM_API_KEY holds spaces or control characters; set the key alone")
        base_url = check_base_url(base_url)
    directory = report_dir(args, "run")
    return RunOptions(
        input=input_options(args),
        report_dir=directory,
        state=args.state or default_state(directory, sandbox=args.sandbox),
        base_url=base_url,
        api_key=key,
        account=args.account,
        on_existing=args.on_existing,
        concurrency=args.concurrency,
        max_rate=args.max_rate,
        limit=args.limit,
        timeout_s=args.timeout,
        max_wait_s=args.max_wait,
        max_attempts=args.max_attempts,
        verbose=args.verbose,
        quiet=args.quiet,
        labels=_labels(args.label),
        allow_renumber=args.allow_renumber,
    )


def _run(options: RunOptions, *, sandbox: bool) -> int:
    if not sandbox:
        return asyncio.run(pipeline.run(options=options, out=sys.stdout, err=sys.stderr))
    from importer.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig()) as box:
        print(f"Sandbox: a fresh Kirim-compatible server at {box.base_url}", file=sys.stdout)
        options = replace(options, base_url=box.base_url, api_key=box.token)
        return asyncio.run(pipeline.run(options=options, out=sys.stdout, err=sys.stderr))


def _refuse_keys(argv: Sequence[str]) -> None:
    """A Kirim key given as an argument would sit in the shell's history and the process list;
    refuse it before argparse could echo it, without repeating it."""
    for arg in argv:
        if KEY_SHAPE.search(arg):
            print(
                "kirim-import: error: an argument looks like a Kirim API key; the key is read "
                "from KIRIM_API_KEY only (it was not used, and is not shown here)",
                file=sys.stderr,
            )
            raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _refuse_keys(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "sandbox":
            from importer.sandbox import command as sandbox_command

            return sandbox_command.run(args)
        if args.command == "history":
            state = args.state or REPORTS / JOURNAL_FILE
            return history.show(state=state, as_json=args.json, out=sys.stdout)
        if args.command == "plan":
            if args.write_per_minute <= 0:
                raise UsageError("--write-per-minute must be positive")
            directory = report_dir(args, "plan")
            options = PlanOptions(
                input=input_options(args),
                report_dir=directory,
                write_per_minute=args.write_per_minute,
                state=plan_state(args.state, directory),
                verbose=args.verbose,
            )
            return pipeline.plan(options=options, out=sys.stdout)
        return _run(run_options(args), sandbox=args.sandbox)
    except UsageError as exc:
        args.usage_error(str(exc))  # exits 2, with that command's usage
    except InputError as exc:
        print(f"kirim-import: error: {exc}", file=sys.stderr)
        print("Nothing was sent.", file=sys.stderr)
        return 2
    except StopRun as exc:
        print(f"kirim-import: stopped: {exc}", file=sys.stderr)
        return 3
    except ImporterError as exc:
        print(f"kirim-import: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the run installed its own handler: nothing was sent
        print("kirim-import: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("KIRIM_IMPORT_DEBUG"):
            raise
        # a bug of ours: one line, with no key in it (KIRIM_IMPORT_DEBUG=1 shows the traceback)
        print(
            f"kirim-import: internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(rerun with KIRIM_IMPORT_DEBUG=1 for the details; the journal keeps what was done)",
            file=sys.stderr,
        )
        return 3
    return 2
