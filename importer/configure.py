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
import ipaddress
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
    BareNumbers,
    InputOptions,
    MetadataPolicy,
    OnExisting,
    PlanOptions,
    RunOptions,
)
from importer.records import FIELDS
from importer.redact import KEY_SHAPE
from importer.validate.mapping import load_mapping_file

DEFAULT_BASE_URL = "https://api.kirim.chat/v1"
REPORTS = Path("reports")  # the default report folders go here, the journal beside them
JOURNAL_FILE = "kirim-journal.sqlite"
STDIN = Path("-")


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
    source: Path,
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
    return InputOptions(
        path=source,
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
    )


def report_folder(directory: Path | str | None, *, source: Path, command: str) -> Path:
    """``--report-dir``, else a new ``reports/<file>-<command>-<time>/``."""
    if directory is not None:
        return Path(directory)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem = "stdin" if source == STDIN else source.name.split(".")[0] or source.stem
    base = REPORTS / f"{stem}-{command}-{stamp}"
    candidate, n = base, 1
    while True:  # made here, atomically: two runs of one file in one second get two folders
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")
            continue
        except OSError:
            return candidate  # the report says why it cannot be made, as for --report-dir
        return candidate


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


def _account(account: object) -> str | None:
    """``--account``: a phone_number_id (the API may pass its digits as a number)."""
    if account is None:
        return None
    if isinstance(account, int) and not isinstance(account, bool):
        account = str(account)
    if not isinstance(account, str) or not re.fullmatch(r"\d{6,20}", account):
        raise UsageError("--account takes a phone_number_id: 6 to 20 digits")
    return account


def _labels(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    out = tuple(dict.fromkeys(n.strip() for n in names))
    for name in out:
        if not 1 <= len(name) <= 50:
            raise UsageError(f"--label {name!r}: a label name has 1 to 50 characters")
    return out


def _api_key(given: str | None) -> str:
    key = (given if given is not None else os.environ.get("KIRIM_API_KEY", "")).strip()
    if not key:  # (a CRLF .env file leaves a \r: stripped above)
        raise UsageError("set KIRIM_API_KEY to your Kirim API key (or use --sandbox)")
    if not key.isascii() or not key.isprintable() or " " in key:
        raise UsageError("KIRIM_API_KEY holds spaces or control characters; set the key alone")
    return key


def run_options(
    *,
    source: Path,
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
    **reading: Any,
) -> RunOptions:
    """The options of a ``run``; ``reading`` are ``input_options``' (an unknown name is a
    ``UsageError``). ``sandbox``: the caller starts a sandbox and sets the base URL and key."""
    for option, value, whole in (
        ("--concurrency", concurrency, True), ("--limit", limit, True),
        ("--max-attempts", max_attempts, True), ("--max-rate", max_rate, False),
        ("--timeout", timeout, False), ("--max-wait", max_wait, False),
    ):  # fmt: skip
        _number(value, option, whole=whole)
    account = _account(account)
    if concurrency is not None and not 1 <= concurrency <= 1024:
        raise UsageError("--concurrency must be between 1 and 1024")
    if max_rate is not None and max_rate <= 0:
        raise UsageError("--max-rate must be positive")
    if timeout is not None and timeout <= 0:
        raise UsageError("--timeout must be positive")
    if max_attempts is not None and not 1 <= max_attempts <= 50:
        raise UsageError("--max-attempts must be between 1 and 50")
    if max_wait is not None and max_wait < 0:
        raise UsageError("--max-wait must be 0 or more")
    if limit is not None and limit < 0:
        raise UsageError("--limit must be 0 or more")
    _choice(on_existing, get_args(OnExisting), "--on-existing")
    if sandbox and base_url:
        raise UsageError("--sandbox starts its own server: leave out --base-url")
    url = base_url or os.environ.get("KIRIM_BASE_URL") or DEFAULT_BASE_URL
    key = ""
    if not sandbox:
        key = _api_key(api_key)
        url = check_base_url(url)
    given = _input(source, reading)
    directory = report_folder(report_dir, source=source, command="run")
    return RunOptions(
        input=given,
        report_dir=directory,
        state=Path(state) if state is not None else default_state(directory, sandbox=sandbox),
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
    )


def plan_options(
    *,
    source: Path,
    report_dir: Path | str | None = None,
    write_per_minute: int | None = None,
    verify: bool = False,
    state: Path | str | None = None,
    verbose: bool = False,
    account: str | int | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    **reading: Any,
) -> PlanOptions:
    """The options of a ``plan``. A key (``api_key``, else ``KIRIM_API_KEY``) is optional:
    with one, a file's account column is checked against Kirim's list of accounts."""
    _number(write_per_minute, "--write-per-minute", whole=True)
    account = _account(account)
    key = (api_key if api_key is not None else os.environ.get("KIRIM_API_KEY", "")).strip()
    url: str | None = base_url or os.environ.get("KIRIM_BASE_URL") or DEFAULT_BASE_URL
    try:
        if base_url is not None:
            check_base_url(base_url)
        if key:
            key, url = _api_key(key), check_base_url(url or "")
    except UsageError:
        if api_key is not None or base_url is not None:  # given: the caller's mistake
            raise
        key, url = "", None  # from the environment: a plan needs neither; it goes unchecked
    if write_per_minute is not None and write_per_minute <= 0:
        raise UsageError("--write-per-minute must be positive")
    given = _input(source, reading)
    directory = report_folder(report_dir, source=source, command="plan")
    return PlanOptions(
        input=given,
        report_dir=directory,
        write_per_minute=_or_default(write_per_minute, PlanOptions, "write_per_minute"),
        verify=verify,
        state=_plan_state(None if state is None else Path(state), directory),
        verbose=verbose,
        account=account,
        base_url=url,
        api_key=key,
    )


def _plan_state(state: Path | None, report_dir: Path) -> Path | None:
    """The journal a plan compares phone cells with: ``--state``, else the one a run with
    these options would use, when it exists."""
    if state is None:
        journal = default_state(report_dir, sandbox=False)
        return journal if journal.is_file() else None
    if not state.is_file():
        raise UsageError(f"--state {state}: no journal there")
    return state


def _input(source: Path, reading: dict[str, Any]) -> InputOptions:
    known = set(inspect.signature(input_options).parameters) - {"source"}
    if unknown := sorted(set(reading) - known):
        raise UsageError(f"unknown option(s): {', '.join(unknown)}")
    return input_options(source=source, **reading)
