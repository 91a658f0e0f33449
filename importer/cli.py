"""The command line: parse, check, build the frozen options, hand off to the pipeline.

    kirim-import plan FILE [input options]           validate and report, no network (an
                                                     account column: GET /v1/accounts with a key)
    kirim-import run FILE [run options]              import into Kirim (or --sandbox)
    kirim-import sandbox [options]                   serve the Kirim-compatible sandbox
    kirim-import history [--state FILE] [--json]     the runs a journal holds, newest first
    kirim-import config FILE [--profile NAME]        a config file's effective options, by source

Exit codes: 0 all rows fine; 1 some rows invalid or failed, or a wanted label not attached;
2 usage or input error, or a guard rail refused the file, nothing sent; 3 stopped early (auth,
account, signal, retry budget, --max-failed, the time window); 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from importer import __version__, configfile, configure, history, jsonlog, pipeline
from importer.configure import DEFAULT_BASE_URL, JOURNAL_FILE, REPORTS, default
from importer.errors import ImporterError, InputError, Refused, StopRun, UsageError
from importer.options import PlanOptions, RunOptions
from importer.read import remote
from importer.read.source import FORMATS
from importer.redact import KEY_SHAPE, redact


def _path(text: str) -> Path:
    """A path option's value: an empty one (``--report-dir "$DIR"`` with DIR unset) is a
    mistake, not the working directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, not an empty string")
    return Path(text)


def _input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        metavar="SOURCE",
        help="CSV, TSV, Parquet, XLSX/XLSM/XLSB/XLS/ODS (also .gz .bz2 .xz .zst), - for stdin, "
        "or a URL: https://, s3://, gs://, az://, abfs:// (or give --sql instead)",
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
        help="map a field (phone_number, name, email, labels, account) to a column; "
        "repeatable",
    )
    g.add_argument("--mapping", type=_path, metavar="FILE", help="TOML or JSON field->header map")
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
        "--bare-numbers",
        choices=("refuse", "international", "national"),
        default="refuse",
        help="a number without + or 00 that is valid both with its first digits as the "
        "country code and as a national number of --default-region: refuse the row "
        "(default; the one mobile reading wins, with a warning), or read such numbers as "
        "international or as national",
    )
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
    _source_arguments(parser)
    parser.add_argument("--report-dir", type=_path, help="where reports go (default: reports/...)")


def _mirror_arguments(plan: argparse.ArgumentParser, run: argparse.ArgumentParser) -> None:
    """--sync-label, --max-detach and --adopt (``mirror``, ``send.adopt``)."""
    for parser in (plan, run):
        g = parser.add_argument_group("mirroring the source")
        g.add_argument(
            "--sync-label",
            action="append",
            default=[],
            metavar="NAME",
            help="this label on every row's contact, and taken off the contacts this journal "
            "put it on for this source that have left it; repeatable",
        )
        g.add_argument(
            "--adopt",
            action="store_true",
            help="page the account's contacts into the journal first, so rows Kirim has need "
            "no lookup (automatic on a first sync of more than 100 rows)"
            if parser is run
            else "say what a first sync costs: lookups against paging the account",
        )
        g.add_argument(
            "--max-detach",
            metavar="N|P%",
            help="refuse (exit 2, before anything is sent) a run that would detach more "
            "than N contacts, or P%% of a --sync-label's members from this source "
            "(default 10%%)"
            if parser is run
            else "say whether a run would refuse to detach that many (default 10%%)",
        )


def _export_arguments(export: argparse.ArgumentParser) -> None:
    export.add_argument("--output", "-o", type=_path, required=True, metavar="FILE")
    export.add_argument(
        "--format", choices=("csv", "parquet"), help="default: from the extension, else csv"
    )
    export.add_argument("--label", metavar="NAME", help="only this label's members")
    export.add_argument(
        "--account", metavar="PHONE_NUMBER_ID", help="default: the only connected one"
    )
    export.add_argument("--base-url", help=f"default: $KIRIM_BASE_URL, else {DEFAULT_BASE_URL}")
    export.add_argument("--timeout", type=float, help="seconds per request")
    export.add_argument("--max-attempts", type=int, metavar="N", help="tries per request")
    export.add_argument("--max-wait", type=float, metavar="SECONDS", help="longest Retry-After")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    """A database query instead of SOURCE (read/query.py), and the rows' own key."""
    g = parser.add_argument_group("a database query as the source")
    g.add_argument("--sql", metavar="QUERY", help="read the rows this query returns")
    g.add_argument("--sql-file", metavar="FILE", help="read the query from FILE")
    g.add_argument(
        "--db-uri-env",
        metavar="NAME",
        help="the environment variable holding the database URI (default KIRIM_SOURCE_DB; "
        "the URI is never a flag: it holds a password)",
    )
    g.add_argument(
        "--row-key",
        metavar="COLUMN",
        help="the column that names each row in results.csv (its row_key column)",
    )


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
        help="the account's write budget, for the time estimate (default "
        f"{default(PlanOptions, 'write_per_minute')})",
    )
    plan.add_argument(
        "--verify",
        action="store_true",
        help="also estimate what run --verify costs: at most one lookup per valid row",
    )
    plan.add_argument(
        "--state",
        type=_path,
        metavar="FILE",
        help="the journal whose phone cells to compare with (default: a run's default "
        "journal, when it exists)",
    )
    plan.add_argument(
        "-v", "--verbose", action="store_true", help="show renumbered rows' phones unmasked"
    )
    g = plan.add_argument_group(
        "accounts (a file with an account column; checked when KIRIM_API_KEY is set)"
    )
    g.add_argument(
        "--account", metavar="PHONE_NUMBER_ID", help="the account of empty cells, as in run"
    )
    g.add_argument("--base-url", help=f"default: $KIRIM_BASE_URL, else {DEFAULT_BASE_URL}")
    run = sub.add_parser(
        "run",
        help="import a file into Kirim",
        epilog="The API key is read from KIRIM_API_KEY, never from a flag.",
    )
    _input_arguments(run)
    g = run.add_argument_group("sending")
    g.add_argument(
        "--account",
        metavar="PHONE_NUMBER_ID",
        help="default: the only connected one; with an account column, the account of its "
        "empty cells",
    )
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
    g.add_argument(
        "--verify",
        action="store_true",
        help="look up every contact the journal holds as done (read budget) and create "
        "again those deleted in Kirim since (a weekly nightly job, say)",
    )
    g.add_argument("--concurrency", type=int, help="requests in flight (default: from the rate)")
    g.add_argument("--max-rate", type=float, metavar="N", help="writes per minute, at most")
    g.add_argument("--limit", type=int, metavar="N", help="send only the first N valid rows")
    g.add_argument("--state", type=_path, metavar="FILE", help="the journal (SQLite)")
    g.add_argument(
        "--allow-renumber",
        action="store_true",
        help="send rows whose phone cell the journal knows under another number (a changed "
        "--default-region) as their new numbers; without it such a run sends nothing (exit 2)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        help=f"seconds per request (default {default(RunOptions, 'timeout_s'):g})",
    )
    g.add_argument(
        "--max-attempts",
        type=int,
        metavar="N",
        help=f"tries per request, the first included (default "
        f"{default(RunOptions, 'max_attempts')}); a row whose tries run out is reported "
        "failed and retryable",
    )
    g.add_argument(
        "--max-wait",
        type=float,
        metavar="SECONDS",
        help="stop (exit 3) when Kirim asks to wait longer than this (default "
        f"{default(RunOptions, 'max_wait_s'):g})",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="log unmasked contact details")
    g.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and the closing lines (cron)"
    )
    _guard_arguments(plan, run)
    _mirror_arguments(plan, run)
    export = sub.add_parser(
        "export",
        help="write an account's contacts to CSV or Parquet",
        epilog="The API key is read from KIRIM_API_KEY, never from a flag.",
    )
    _export_arguments(export)
    sandbox = sub.add_parser("sandbox", help="serve a Kirim-compatible sandbox on loopback")
    sandbox_command.add_arguments(sandbox)
    past = sub.add_parser("history", help="the runs a journal holds, newest first")
    past.add_argument(
        "--state", type=_path, metavar="FILE", help=f"default: {REPORTS / JOURNAL_FILE}"
    )
    past.add_argument("--json", action="store_true", help="one JSON object per line")
    _nightly_arguments(plan, run)
    shown = sub.add_parser(
        "config",
        help="the options a config file gives run (or plan), and where each comes from",
        epilog="Options after the file are taken as run's (or plan's) flags, to see what "
        "a command line would do with the file.",
    )
    shown.add_argument("config_file", type=Path, metavar="FILE", help="the TOML config file")
    shown.add_argument("--profile", metavar="NAME", help="a [profiles.NAME] table of the file")
    shown.add_argument("--command", dest="command_for", choices=configfile.COMMANDS, default="run",
                       help="whose options to show (default: run)")  # fmt: skip
    for command in (plan, run, export, sandbox, past, shown):
        command.set_defaults(usage_error=command.error)
    return parser


def _nightly_arguments(plan: argparse.ArgumentParser, run: argparse.ArgumentParser) -> None:
    """A config file for both commands; notifications and JSON logs for ``run``."""
    for command in (plan, run):
        g = command.add_argument_group("config file")
        g.add_argument(
            "--config", type=_path, metavar="FILE",
            help="a TOML file of options (long names with underscores; flags win over it)",
        )  # fmt: skip
        g.add_argument("--profile", metavar="NAME", help="use the file's [profiles.NAME] too")
    g = run.add_argument_group("unattended runs")
    g.add_argument(
        "--notify", action="append", default=[], metavar="URL",
        help="POST the run's outcome as JSON to this URL (a Slack, Mattermost or Teams "
        "webhook shows its text); repeatable",
    )  # fmt: skip
    g.add_argument(
        "--notify-on", choices=("failure", "always"), default="failure",
        help="notify only when the run failed (default: exit code not 0, or a row failed), "
        "or after every run",
    )  # fmt: skip
    g.add_argument(
        "--log-format", choices=("text", "json"), default="text",
        help="log lines on standard error as text (default) or one JSON object a line",
    )  # fmt: skip


def _guard_arguments(plan: argparse.ArgumentParser, run: argparse.ArgumentParser) -> None:
    """Guard rails and the time window (``importer.guards``, ``importer.window``): a run
    applies them, a plan shows what they would say."""
    for parser, doing in ((plan, "show whether a run would refuse"), (run, "refuse")):
        g = parser.add_argument_group("guard rails and time window")
        g.add_argument(
            "--max-invalid",
            metavar="N|P%",
            help=f"{doing} (exit 2, nothing sent) when more rows than this are invalid: a "
            "number of rows or a share of the file's",
        )
        g.add_argument(
            "--min-share",
            metavar="P%",
            help="the shrink guard: a file with fewer valid rows than this share of its last "
            f"finished run's is refused (default {100 * default(RunOptions, 'min_share'):.0f}%%)",
        )
        g.add_argument(
            "--max-duration",
            metavar="DURATION",
            help="the time window: stop cleanly (exit 3, rerun to resume) after this long, "
            "such as 45s, 90m, 5h30m"
            + ("" if parser is run else "; the plan says how many runs the file needs"),
        )
        g.add_argument(
            "--until",
            metavar="HH:MM",
            help="the time window: stop cleanly at the next such local time (exit 3, rerun "
            "to resume)",
        )
    g.add_argument(
        "--allow-shrink",
        action="store_true",
        help="send a file whose valid rows shrank below --min-share of its last finished run",
    )
    g.add_argument(
        "--max-failed",
        metavar="N|P%",
        help="stop the run (exit 3) once this many rows have failed: a number, or a share "
        "of the valid rows",
    )


_INPUT = (
    "format", "encoding", "delimiter", "sheet", "header_row", "map", "mapping", "metadata",
    "default_region", "require_mobile", "bare_numbers", "invalid_email", "keep",
    "sql", "sql_file", "db_uri_env", "row_key",
)  # fmt: skip
_RUN = (
    "report_dir", "state", "base_url", "sandbox", "account", "on_existing", "concurrency",
    "max_rate", "limit", "timeout", "max_wait", "max_attempts", "verbose", "quiet", "verify",
    "allow_renumber", "max_invalid", "min_share", "allow_shrink", "max_failed", "max_duration",
    "until",
)  # fmt: skip


def _picked(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names}


_NIGHTLY = ("notify", "notify_on", "log_format")


def run_options(args: argparse.Namespace) -> RunOptions:
    """The parsed arguments as ``RunOptions``; every check is ``configure``'s (the API's too)."""
    return configure.run_options(
        source=args.file, labels=args.label, **_picked(args, _RUN), **_picked(args, _INPUT),
        **_picked(args, _NIGHTLY), api_key_env=getattr(args, "api_key_env", None),
        sync_labels=args.sync_label, max_detach=args.max_detach, adopt=args.adopt,
    )  # fmt: skip


def plan_options(args: argparse.Namespace) -> PlanOptions:
    return configure.plan_options(
        source=args.file,
        report_dir=args.report_dir,
        write_per_minute=args.write_per_minute,
        verify=args.verify,
        state=args.state,
        verbose=args.verbose,
        **_picked(args, ("max_invalid", "min_share", "max_duration", "until")),
        account=args.account,
        base_url=args.base_url,
        api_key_env=getattr(args, "api_key_env", None),  # --config's, for an account column
        **_picked(args, _INPUT),
        sync_labels=args.sync_label,
        adopt=args.adopt,
        max_detach=args.max_detach,
    )


def _run(options: RunOptions, *, sandbox: bool) -> int:
    if not sandbox:
        return asyncio.run(pipeline.run(options=options, out=sys.stdout, err=sys.stderr))
    from importer.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig()) as box:
        print(f"Sandbox: a fresh Kirim-compatible server at {box.base_url}", file=sys.stdout)
        options = replace(options, base_url=box.base_url, api_key=box.token, sandbox=True)
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


def _json_log(
    args: argparse.Namespace, event: str, message: str, *, exit_code: int,
    refused: ImporterError | None = None,
) -> bool:
    """An error of the command line as a JSON log line, under ``--log-format json``."""
    if getattr(args, "log_format", "text") != "json":
        return False
    fields: dict[str, Any] = {"reason": redact(message), "exit_code": exit_code}
    if event == "stopped":  # the server said no before the run began
        fields["stop_kind"] = "server"
    else:  # a guard rail: which, and its numbers
        fields.update(guard=None, facts=None)
        if isinstance(refused, Refused):
            fields.update(guard=refused.guard, facts=refused.facts)
    text = jsonlog.line(level="error", event=event, message=redact(message), fields=fields)
    print(text, file=sys.stderr)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    _refuse_keys(argv)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "config":  # config takes run's or plan's flags after it
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    loaded: configfile.Loaded | None = None
    try:
        if args.command == "config":
            lines = configfile.resolve(
                args.config_file, profile=args.profile, command=args.command_for, argv=extra
            )
            print("\n".join(lines), file=sys.stdout)
            return 0
        if args.command in configfile.COMMANDS and (loaded := configfile.apply(args, argv)):
            args.api_key_env = loaded.key_env
        # a download shows its bar on a terminal; never between JSON log lines
        remote.PROGRESS.set(getattr(args, "log_format", "text") != "json")
        if args.command == "sandbox":
            from importer.sandbox import command as sandbox_command

            return sandbox_command.run(args)
        if args.command == "history":
            state = args.state or REPORTS / JOURNAL_FILE
            return history.show(state=state, as_json=args.json, out=sys.stdout)
        if args.command == "export":
            from importer import exporter

            return exporter.main(args)
        if args.command == "plan":
            return pipeline.plan(options=plan_options(args), out=sys.stdout)
        return _run(run_options(args), sandbox=args.sandbox)
    except UsageError as exc:
        if loaded is not None:  # a value from the config file: named at its line
            exc = UsageError(configfile.locate(str(exc), loaded, configfile.given_flags(argv)))
        if _json_log(args, "error", str(exc), exit_code=2):
            return 2
        args.usage_error(str(exc))  # exits 2, with that command's usage
    except InputError as exc:
        if _json_log(args, "error", f"{exc}; nothing was sent", exit_code=2, refused=exc):
            return 2
        print(f"kirim-import: error: {exc}", file=sys.stderr)
        print("Nothing was sent.", file=sys.stderr)
        return 2
    except StopRun as exc:
        if _json_log(args, "stopped", str(exc), exit_code=3):
            return 3
        print(f"kirim-import: stopped: {exc}", file=sys.stderr)
        return 3
    except ImporterError as exc:
        if _json_log(args, "error", str(exc), exit_code=2):
            return 2
        print(f"kirim-import: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (``kirim-import config FILE | head``)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush is quiet
        if args.command in ("config", "history", "plan"):
            return 0  # all was said that was wanted
        print("kirim-import: standard output was closed", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # before the run installed its own handler: nothing was sent
        print("kirim-import: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("KIRIM_IMPORT_DEBUG"):
            raise
        # a bug of ours: one line, with no key in it (KIRIM_IMPORT_DEBUG=1 shows the traceback)
        told = (
            f"internal error: {type(exc).__name__}: {redact(str(exc))} (rerun with "
            "KIRIM_IMPORT_DEBUG=1 for the details; the journal keeps what was done)"
        )
        if not _json_log(args, "error", told, exit_code=3):
            print(f"kirim-import: {told}", file=sys.stderr)
        return 3
    return 2
