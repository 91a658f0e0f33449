"""Options from plain values: every check on an option, written once, for the command line and
the Python API alike (``cli`` passes its parsed arguments, ``api`` its keyword arguments).

The names are the command line's long options with underscores (``--default-region`` is
``default_region``, ``--max-wait`` is ``max_wait``); a value that cannot be used raises
``UsageError`` naming the option as the command line spells it. Defaults live in the frozen
option records (``importer.options``) and nowhere else: ``None`` here means "the default".
The key is never an option of the command line: ``api_key`` comes from the API's caller or
``KIRIM_API_KEY``, and an argument that looks like one is refused by the CLI before parsing.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

import phonenumbers

from importer.errors import UsageError
from importer.options import (
    STDIN,
    BareNumbers,
    ExportOptions,
    InputOptions,
    Limit,
    LogFormat,
    MetadataPolicy,
    NotifyOn,
    OnExisting,
    PlanOptions,
    RunOptions,
)
from importer.private import private_folder
from importer.read import location
from importer.records import ACCOUNT_ID, FIELDS
from importer.redact import KEY_SHAPE
from importer.validate.mapping import load_mapping_file
from importer.window import describe, parse_duration, parse_until, seconds_until

DEFAULT_BASE_URL = "https://api.kirim.chat/v1"
REPORTS = Path("reports")  # the default report folders go here, the journal beside them
JOURNAL_FILE = "kirim-journal.sqlite"


def default(record: type[Any], name: str) -> Any:
    """The default of one field of a frozen options record: the one place it is written."""
    for f in dataclasses.fields(record):
        if f.name == name:
            return f.default
    raise KeyError(name)


def _or_default(value: Any, record: type[Any], name: str) -> Any:
    return default(record, name) if value is None else value


def _metadata(value: str | Iterable[str]) -> MetadataPolicy:
    if isinstance(value, str):
        if value in ("all", "none"):
            return cast(MetadataPolicy, value)
        value = value.split(",")
    return tuple(c.strip() for c in value if c.strip())


def _field_map(
    items: Mapping[str, str] | Iterable[str], mapping: Path | str | None
) -> dict[str, str]:
    field_map = dict(load_mapping_file(Path(mapping))) if mapping else {}
    pairs = (
        list(items.items())
        if isinstance(items, Mapping)
        else [tuple(item.partition("=")[::2]) for item in items]
    )
    for field, header in pairs:
        # ``--map account=`` (empty): the file has no account column (its header stays metadata)
        empty_ok = field.strip() == "account"
        if field.strip() not in FIELDS or not (header.strip() or empty_ok):
            raise UsageError(
                f"--map {field}={header}: expected FIELD=HEADER with FIELD one of "
                f"{', '.join(FIELDS)}"
            )
        field_map[field.strip()] = header.strip()
    return field_map


def _number(value: Any, option: str, *, whole: bool) -> Any:
    """``value`` when it is a number of the right kind (or None), else a ``UsageError``: the
    API takes Python values, and a string or a bool there is a mistake, not a number."""
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if value is None or (isinstance(value, kinds) and not isinstance(value, bool)):
        return value
    raise UsageError(f"{option} takes a {'whole ' if whole else ''}number, not {value!r}")


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    if value is not None and value not in allowed:
        raise UsageError(f"{option} {value!r}: expected one of {', '.join(allowed)}")
    return value


def input_options(
    *,
    source: Path | str | None,
    format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | int | None = None,
    header_row: int | None = None,
    map: Mapping[str, str] | Iterable[str] = (),
    mapping: Path | str | None = None,
    metadata: str | Iterable[str] = "all",
    default_region: str | None = None,
    require_mobile: bool = False,
    bare_numbers: str = "refuse",
    invalid_email: str = "fail",
    keep: str = "first",
    sql: str | None = None,
    sql_file: Path | str | None = None,
    db_uri_env: str | None = None,
    db_uri: str | None = None,
    row_key: str | None = None,
) -> InputOptions:
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter.lower(), delimiter)  # checked in read/
    region = default_region.upper() if default_region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise UsageError(
            f"--default-region {default_region!r} is not an ISO country code "
            "that phone numbering knows (e.g. ID, US, GB, BR)"
        )
    _number(header_row, "--header-row", whole=True)
    if header_row is not None and header_row < 1:
        raise UsageError(f"--header-row {header_row}: the first line is 1")
    _choice(bare_numbers, get_args(BareNumbers), "--bare-numbers")
    _choice(invalid_email, ("fail", "drop"), "--invalid-email")
    _choice(keep, ("first", "last"), "--keep")
    where = location.where(
        source, sql=sql, sql_file=sql_file, db_uri_env=db_uri_env, db_uri=db_uri
    )
    if row_key is not None and not str(row_key).strip():
        raise UsageError("--row-key takes a column name")
    if where.url is not None and format is None and location.is_sheets_export(where.url):
        format = "csv"
    return InputOptions(
        path=where.path,
        encoding=encoding,
        delimiter=delimiter,
        sheet=None if sheet is None else str(sheet),
        header_row=header_row,
        format=format,
        field_map=_field_map(map, mapping),
        metadata=_metadata(metadata),
        default_region=region,
        require_mobile=require_mobile,
        bare_numbers=cast(BareNumbers, bare_numbers),
        invalid_email=cast(Literal["fail", "drop"], invalid_email),
        keep=cast(Literal["first", "last"], keep),
        url=where.url,
        sql=where.sql,
        db_uri=where.db_uri,
        row_key=row_key.strip() if row_key else None,
    )


def report_folder(directory: Path | str | None, *, source: Path, command: str) -> Path:
    """``--report-dir``, else a new ``reports/<file>-<command>-<time>/``."""
    if directory is not None:
        if not str(directory).strip():  # report_dir="" is a mistake, not the working folder
            raise UsageError("--report-dir '': expected a folder, not an empty string")
        return Path(directory)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem = "stdin" if source == STDIN else source.name.split(".")[0] or source.stem
    base = REPORTS / f"{stem}-{command}-{stamp}"
    candidate, n = base, 1
    while True:  # made here, atomically: two runs of one file in one second get two folders
        try:
            private_folder(candidate.parent)  # reports/ holds the journal: 0700 when made
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
            continue
        except OSError:
            return candidate  # the report says why it cannot be made, as for --report-dir
        return candidate


def _path_of(value: Path | str, option: str) -> Path:
    if not str(value).strip():
        raise UsageError(f"{option} '': expected a path, not an empty string")
    return Path(value)


def check_base_url(url: str) -> str:
    """A base URL the key may be sent to: https, or plain http to loopback only; no key and
    no credentials in it."""
    parts = urlsplit(url)
    if KEY_SHAPE.search(url):
        raise UsageError("the base URL holds a Kirim API key: set it in KIRIM_API_KEY only")
    if parts.username is not None or parts.password is not None:
        raise UsageError("the base URL holds credentials (user@ or user:password@): remove them")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"base URL {url!r}: expected https://host/v1")
    if parts.scheme == "http" and not location.is_loopback(parts.hostname):
        raise UsageError(f"base URL {url!r}: plain http is only allowed to loopback; use https")
    return url.rstrip("/")


def default_state(report_dir: Path, *, sandbox: bool) -> Path:
    """The journal beside the report folders; a --sandbox run's own, inside its folder (each
    sandbox is a fresh organisation: its entries would only clutter the real journal)."""
    return report_dir / "journal.sqlite" if sandbox else report_dir.parent / JOURNAL_FILE


def _account(account: object) -> str | None:
    """``--account``: a phone_number_id (the API may pass its digits as a number)."""
    if account is None:
        return None
    if isinstance(account, int) and not isinstance(account, bool):
        account = str(account)
    if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
        raise UsageError("--account takes a phone_number_id: 6 to 20 digits")
    return account


def _labels(names: Iterable[str], option: str = "--label") -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    out = tuple(dict.fromkeys(n.strip() for n in names))
    for name in out:
        if not 1 <= len(name) <= 50:
            raise UsageError(f"{option} {name!r}: a label name has 1 to 50 characters")
    return out


def _api_key(given: str | None, env: str = "KIRIM_API_KEY") -> str:
    key = (given if given is not None else os.environ.get(env, "")).strip()
    if not key:  # (a CRLF .env file leaves a \r: stripped above)
        raise UsageError(f"set {env} to your Kirim API key (or use --sandbox)")
    if not key.isascii() or not key.isprintable() or " " in key:
        raise UsageError(f"{env} holds spaces or control characters; set the key alone")
    return key


def _connection(
    *,
    base_url: str | None,
    api_key: str | None,
    sandbox: bool,
    timeout: float | None,
    max_wait: float | None,
    max_attempts: int | None,
    api_key_env: str | None = None,
) -> tuple[str, str]:
    """What every command that talks to Kirim (``run``, ``export``) checks alike: the
    timeout, the tries and the longest wait; the base URL and the key (neither with
    ``--sandbox``, which starts its own server). Returns the base URL and the key."""
    for option, value, whole in (
        ("--max-attempts", max_attempts, True), ("--timeout", timeout, False),
        ("--max-wait", max_wait, False),
    ):  # fmt: skip
        _number(value, option, whole=whole)
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be positive")
    if max_attempts is not None and not 1 <= max_attempts <= 50:
        raise UsageError("--max-attempts must be between 1 and 50")
    if max_wait is not None and max_wait < 0:
        raise UsageError("--max-wait must be 0 or more")
    if sandbox and base_url:
        raise UsageError("--sandbox starts its own server: leave out --base-url")
    url = base_url or os.environ.get("KIRIM_BASE_URL") or DEFAULT_BASE_URL
    if sandbox:
        return url, ""
    key = _api_key(api_key, api_key_env or "KIRIM_API_KEY")
    return check_base_url(url), key


def run_options(
    *,
    source: Path | str | None = None,
    report_dir: Path | str | None = None,
    state: Path | str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    sandbox: bool = False,
    account: str | None = None,
    on_existing: str = "skip",
    concurrency: int | None = None,
    max_rate: float | None = None,
    limit: int | None = None,
    timeout: float | None = None,
    max_wait: float | None = None,
    max_attempts: int | None = None,
    verbose: bool = False,
    quiet: bool = False,
    labels: Iterable[str] = (),
    verify: bool = False,
    allow_renumber: bool = False,
    notify: Iterable[str] = (),
    notify_on: str = "failure",
    api_key_env: str | None = None,
    log_format: str = "text",
    max_invalid: str | int | None = None,
    min_share: str | float | None = None,
    allow_shrink: bool = False,
    max_failed: str | int | None = None,
    max_duration: str | float | None = None,
    until: str | None = None,
    sync_labels: Iterable[str] = (),
    max_detach: str | float | None = None,
    adopt: bool = False,
    **reading: Any,
) -> RunOptions:
    """The options of a ``run``; ``reading`` are ``input_options``' (an unknown name is a
    ``UsageError``). ``sandbox``: the caller starts a sandbox and sets the base URL and key."""
    for option, value, whole in (
        ("--concurrency", concurrency, True), ("--limit", limit, True),
        ("--max-rate", max_rate, False),
    ):  # fmt: skip
        _number(value, option, whole=whole)
    account = _account(account)
    if concurrency is not None and not 1 <= concurrency <= 1024:
        raise UsageError("--concurrency must be between 1 and 1024")
    if max_rate is not None and max_rate <= 0:
        raise UsageError("--max-rate must be positive")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    _choice(on_existing, get_args(OnExisting), "--on-existing")
    url, key = _connection(
        base_url=base_url, api_key=api_key, api_key_env=api_key_env, sandbox=sandbox,
        timeout=timeout, max_wait=max_wait, max_attempts=max_attempts,
    )  # fmt: skip
    given = _input(source, reading)
    directory = report_folder(report_dir, source=given.path, command="run")
    return RunOptions(
        input=given,
        report_dir=directory,
        state=(
            _path_of(state, "--state")
            if state is not None
            else default_state(directory, sandbox=sandbox)
        ),
        base_url=url,
        api_key=key,
        account=account,
        on_existing=cast(OnExisting, on_existing),
        concurrency=concurrency,
        max_rate=max_rate,
        limit=limit,
        timeout_s=_or_default(timeout, RunOptions, "timeout_s"),
        max_wait_s=_or_default(max_wait, RunOptions, "max_wait_s"),
        max_attempts=_or_default(max_attempts, RunOptions, "max_attempts"),
        verbose=verbose,
        quiet=quiet,
        labels=_labels(labels),
        verify=verify,
        allow_renumber=allow_renumber,
        notify=notify_urls(notify),
        notify_on=cast(NotifyOn, _choice(notify_on, get_args(NotifyOn), "--notify-on")),
        log_format=cast(LogFormat, _choice(log_format, get_args(LogFormat), "--log-format")),
        max_invalid=_limit(max_invalid, "--max-invalid", least=0),
        min_share=_share(min_share),
        allow_shrink=allow_shrink,
        max_failed=_limit(max_failed, "--max-failed", least=1),
        max_duration_s=None if max_duration is None else parse_duration(max_duration),
        until=None if until is None else parse_until(until),
        **_mirror_options(sync_labels, max_detach, adopt),
    )


def _mirror_options(
    sync_labels: Iterable[str], max_detach: str | float | None, adopt: bool
) -> dict[str, Any]:
    """``--sync-label``, ``--max-detach N|P%`` and ``--adopt`` as ``RunOptions`` fields."""
    names = _labels(sync_labels, option="--sync-label")
    out: dict[str, Any] = {"sync_labels": names, "adopt": bool(adopt)}
    if max_detach is None:
        return out
    if isinstance(max_detach, bool) or not isinstance(max_detach, str | int | float):
        raise UsageError(f"--max-detach takes N or P%, not {max_detach!r}")
    text = str(max_detach).strip()
    percent = text.endswith("%")
    try:
        value = float(text.rstrip("%").strip())
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0 or (percent and value > 100) or (
        not percent and value != int(value)
    ):
        raise UsageError(
            f"--max-detach {max_detach!r}: expected a whole number of contacts (e.g. 50) or "
            "a share of the label's members from this source (e.g. 10%)"
        )
    return {**out, "max_detach": value, "max_detach_percent": percent}


def export_options(
    *,
    output: Path | str,
    format: str | None = None,
    label: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    sandbox: bool = False,
    account: str | int | None = None,
    timeout: float | None = None,
    max_wait: float | None = None,
    max_attempts: int | None = None,
    quiet: bool = False,
) -> ExportOptions:
    """The options of an ``export``: ``format`` from ``--format``, else the output's
    extension (``.parquet``), else CSV."""
    account = _account(account)
    path = Path(output)
    kind = format or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv")
    _choice(kind, ("csv", "parquet"), "--format")
    _export_output(path, kind)
    if label is not None:
        label = _labels((label,), option="--label")[0]
    url, key = _connection(
        base_url=base_url, api_key=api_key, sandbox=sandbox, timeout=timeout,
        max_wait=max_wait, max_attempts=max_attempts,
    )  # fmt: skip
    return ExportOptions(
        output=path,
        base_url=url,
        api_key=key,
        format=cast(Literal["csv", "parquet"], kind),
        label=label,
        account=account,
        timeout_s=_or_default(timeout, ExportOptions, "timeout_s"),
        max_wait_s=_or_default(max_wait, ExportOptions, "max_wait_s"),
        max_attempts=_or_default(max_attempts, ExportOptions, "max_attempts"),
        quiet=quiet,
    )


def _export_output(path: Path, kind: str) -> None:
    """``--output`` names a file whose extension reads back as what is written (the export
    is an import source): not a folder, not ``x.xlsx`` or ``x.csv.gz`` holding plain CSV."""
    if not str(path).strip() or path.name in ("", ".", "..") or path.is_dir():
        raise UsageError(f"--output {str(path)!r}: a folder, not a file; give a file name "
                         "such as contacts.csv")  # fmt: skip
    suffix = path.suffix.lower()
    reads_as = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}
    others = (".tsv", ".tab", ".xlsx", ".xlsm", ".xlsb", ".xls", ".ods", ".gz", ".bz2", ".xz",
              ".zst")  # fmt: skip
    if suffix in others:
        raise UsageError(f"--output {path}: export writes CSV or Parquet; name the file "
                         f".csv or .parquet (a {suffix} file would not read back)")  # fmt: skip
    if reads_as.get(suffix, kind) != kind:
        raise UsageError(f"--output {path}: --format {kind} into a {suffix} file would not "
                         f"read back; name it .{kind}")  # fmt: skip


def notify_urls(urls: Iterable[str]) -> tuple[str, ...]:
    """``--notify`` URLs: https, or plain http to loopback (as the base URL); no credentials
    and no key in them. A URL is never repeated whole in a message: a webhook's path often
    holds its token."""
    from importer.notify import masked_url

    if isinstance(urls, str):
        urls = (urls,)
    out = tuple(dict.fromkeys(u.strip() for u in urls))
    for url in out:
        parts = urlsplit(url)
        shown = masked_url(url)
        if KEY_SHAPE.search(url):
            raise UsageError(f"--notify {shown}: the URL holds a Kirim API key")
        if parts.username is not None or parts.password is not None:
            raise UsageError(f"--notify {shown}: credentials (user@) in the URL; remove them")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--notify {shown}: expected https://host/path")
        if parts.scheme == "http" and not location.is_loopback(parts.hostname):
            raise UsageError(f"--notify {shown}: plain http is only allowed to loopback; use https")
    return out


def plan_options(
    *,
    source: Path | str | None = None,
    report_dir: Path | str | None = None,
    write_per_minute: int | None = None,
    verify: bool = False,
    state: Path | str | None = None,
    verbose: bool = False,
    max_invalid: str | int | None = None,
    min_share: str | float | None = None,
    max_duration: str | float | None = None,
    until: str | None = None,
    sync_labels: Iterable[str] = (),
    adopt: bool = False,
    account: str | int | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    max_detach: str | float | None = None,
    api_key_env: str | None = None,
    **reading: Any,
) -> PlanOptions:
    """The options of a ``plan``. A key (``api_key``, else the variable ``api_key_env`` names,
    ``KIRIM_API_KEY`` by default) is optional: with one, a file's account column is checked
    against Kirim's list of accounts."""
    _number(write_per_minute, "--write-per-minute", whole=True)
    account = _account(account)
    env = api_key_env or "KIRIM_API_KEY"
    key = (api_key if api_key is not None else os.environ.get(env, "")).strip()
    url: str | None = base_url or os.environ.get("KIRIM_BASE_URL") or DEFAULT_BASE_URL
    try:
        if base_url is not None:
            check_base_url(base_url)
        if key:
            key, url = _api_key(key, env), check_base_url(url or "")
    except UsageError:
        if api_key is not None or base_url is not None:  # given: the caller's mistake
            raise
        key, url = "", None  # from the environment: a plan needs neither; it goes unchecked
    if write_per_minute is not None and write_per_minute <= 0:
        raise UsageError("--write-per-minute must be positive")
    given = _input(source, reading)
    directory = report_folder(report_dir, source=given.path, command="plan")
    return PlanOptions(
        input=given,
        report_dir=directory,
        write_per_minute=_or_default(write_per_minute, PlanOptions, "write_per_minute"),
        verify=verify,
        state=_plan_state(None if state is None else _path_of(state, "--state"), directory),
        verbose=verbose,
        max_invalid=_limit(max_invalid, "--max-invalid", least=0),
        min_share=_share(min_share),
        **_plan_window(max_duration, until),
        account=account,
        base_url=url,
        api_key=key,
        **_mirror_options(sync_labels, max_detach, adopt),
    )


def _limit(value: str | int | None, option: str, *, least: int) -> Limit | None:
    """``N`` rows or ``P%`` of them (a guard's threshold); ``UsageError`` otherwise."""
    if value is None:
        return None
    text = str(value).strip()
    bad = UsageError(f"{option} {value!r}: expected a number of rows (N) or a share (P%)")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            raise bad from None
        if not 0 <= percent <= 100 or (least and percent == 0):
            raise UsageError(f"{option} {text}: a share between {'0 (excluded)' if least else 0}"
                             " and 100%")  # fmt: skip
        return Limit(percent=percent, text=text)
    if not re.fullmatch(r"\d+", text):
        raise bad
    if int(text) < least:
        raise UsageError(f"{option} {text}: at least {least}")
    return Limit(count=int(text), text=text)


def _share(value: str | float | None) -> float:
    """``--min-share P%`` (or P alone) as a fraction."""
    if value is None:
        return float(default(RunOptions, "min_share"))
    text = str(value).strip().removesuffix("%")
    try:
        percent = float(text)
    except ValueError:
        percent = -1.0
    if isinstance(value, bool) or not 0 <= percent <= 100:
        raise UsageError(f"--min-share {value!r}: a share from 0% to 100%, such as 50%")
    return percent / 100


def _plan_window(max_duration: str | float | None, until: str | None) -> dict[str, Any]:
    """A plan's window, for how many runs a file needs: --max-duration, or from now to the
    next --until (the shorter when both)."""
    ends: list[tuple[float, str]] = []
    if max_duration is not None:
        seconds = parse_duration(max_duration)
        written = max_duration.strip() if isinstance(max_duration, str) else describe(seconds)
        ends.append((seconds, f"--max-duration {written}"))
    if until is not None:
        hhmm = parse_until(until)
        ends.append((seconds_until(hhmm, time.time()), f"--until {hhmm}, from now"))
    if not ends:
        return {}
    seconds, given = min(ends)
    return {"window_s": seconds, "window": given}


def _plan_state(state: Path | None, report_dir: Path) -> Path | None:
    """The journal a plan compares phone cells with: ``--state``, else the one a run with
    these options would use, when it exists."""
    if state is None:
        journal = default_state(report_dir, sandbox=False)
        return journal if journal.is_file() else None
    if not state.is_file():
        raise UsageError(f"--state {state}: no journal there")
    return state


def _input(source: Path | str | None, reading: dict[str, Any]) -> InputOptions:
    known = set(inspect.signature(input_options).parameters) - {"source"}
    if unknown := sorted(set(reading) - known):
        raise UsageError(f"unknown option(s): {', '.join(unknown)}")
    return input_options(source=source, **reading)
