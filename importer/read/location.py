"""Where the input lives, and how it is named to people and to the journal: a local path, a URL
(``https://``, ``s3://``, ``gs://``, ``az://``, ``abfs://``) or a database query.

No I/O here: ``remote`` downloads a URL, ``query`` reads a query. This module owns three rules
the rest of the importer asks it about:

- ``shown(options)``: the source as every message, report, log line and history record names
  it. A URL is shown without its credentials (``user:password@`` dropped, a query string, a
  presigned URL's signature say, replaced by ``?[redacted]``); a query as ``SQL query on`` its
  database URI without the password.
- ``identity(options)``: what the journal keys a run's source by (``pipeline.fingerprint``):
  a file's absolute path, as before; a URL without credentials and without the query
  parameters that sign it (a presigned URL is signed anew each night: still the same source;
  a sheet's ``gid`` stays), the other parameters' values as digests (one may be a key); a
  query by its text and its URI without credentials. Never shown to people (``shown`` is);
  summary.json's ``guards`` and the journal hold it.
- ``check_url(url)``: a URL the importer may read: a known scheme, plain ``http`` to loopback
  only (as for the Kirim base URL). A Google Sheets share link becomes its CSV export.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from importer.errors import UsageError
from importer.options import InputOptions
from importer.redact import REDACTED

CLOUD_SCHEMES = ("s3", "gs", "az", "abfs", "abfss")
URL_SCHEMES = ("https", "http", *CLOUD_SCHEMES)
SQL_PATH = Path("query")  # the stand-in path of a query source: names its report folders
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# the query parameters that sign or authorise a URL (S3, GCS, Azure SAS, OAuth), signed anew
# each time: not part of what the URL names
_SIGNING = re.compile(
    r"(?i)^(x-amz-.*|x-goog-.*|signature|sig|expires|awsaccesskeyid|googleaccessid|"
    r"(access_)?token|key|se|st|sp|sv|sr|spr|sip|ss|srt|sdd|skoid|sktid|skt|ske|sks|skv)$"
)
_PLAIN = ("gid", "format")  # a sheet's tab and a CSV export's format: kept as they are
_SHEETS = re.compile(r"^/spreadsheets/d/([A-Za-z0-9_-]+)")


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether ``text`` is a URL (``scheme://...``), not a local path."""
    return isinstance(text, str) and bool(_URL.match(text))


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback address: the only hosts plain http may go to (a source's
    URL, the Kirim base URL and ``--notify`` alike)."""
    if not host:
        return False
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """``url`` as it will be read (a Google Sheets link as its CSV export), or ``UsageError``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise UsageError(
            f"{redact_url(url)}: cannot read {scheme}:// URLs; expected a path or one of "
            f"{', '.join(s + '://' for s in URL_SCHEMES)}"
        )
    if not parts.hostname:
        raise UsageError(f"{redact_url(url)}: the URL names no host or bucket")
    if scheme == "http" and not is_loopback(parts.hostname):
        raise UsageError(
            f"{redact_url(url)}: plain http is only allowed to loopback; use https"
        )
    if scheme in ("http", "https") and parts.hostname == "docs.google.com":
        return _sheets_export(url)
    return url


def _sheets_export(url: str) -> str:
    """A Google Sheets share or edit link as its CSV export of the same tab (``gid``)."""
    parts = urlsplit(url)
    found = _SHEETS.match(parts.path)
    if not found or parts.path.endswith("/export"):
        return url
    gid = parse_qs(parts.query).get("gid", [None])[0] or parse_qs(parts.fragment).get(
        "gid", ["0"]
    )[0]
    query = f"format=csv&gid={gid}"
    path = f"/spreadsheets/d/{found.group(1)}/export"
    return urlunsplit(("https", parts.netloc, path, query, ""))


def is_sheets_export(url: str) -> bool:
    parts = urlsplit(url)
    return parts.hostname == "docs.google.com" and parts.path.endswith("/export")


def redact_url(url: str, *, keep_query: bool = True) -> str:
    """``url`` without credentials: no ``user:password@``; a query string as ``?[redacted]``
    (or dropped when ``keep_query`` is false: the journal's identity)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if _port(parts) else "")
    if parts.scheme.lower() in CLOUD_SCHEMES and parts.username and parts.password is None:
        netloc = f"{parts.username}@{netloc}"  # abfs://container@account...: not a secret
    query = REDACTED if parts.query and keep_query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _port(parts: object) -> int | None:
    try:
        return getattr(parts, "port", None)
    except ValueError:
        return None


def stand_in(url: str) -> Path:
    """The file name a URL stands for: its last path segment (``contacts.csv.gz``), whose
    extensions say the format and compression as a local file's would."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    if is_sheets_export(url):
        return Path("sheet.csv")
    return Path(name or "download")


def redact_db_uri(uri: str) -> str:
    """A database URI without its password (and without a query string, which may hold one)."""
    if not _URL.match(uri):
        return uri
    parts = urlsplit(uri)
    if not parts.netloc:  # sqlite:///path: no host, so no credentials
        return uri.split("?", 1)[0]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = f"{parts.username}@" if parts.username else ""
    netloc = user + host + (f":{parts.port}" if _port(parts) else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def shown(options: InputOptions) -> str:
    """The source as people see it (messages, the report, logs, history)."""
    if options.sql is not None:
        return f"SQL query on {redact_db_uri(options.db_uri or '')}"
    if options.url is not None:
        return redact_url(options.url)
    return str(options.path)


def identity(options: InputOptions) -> str:
    """What the journal knows a run's source by (see the module's docstring)."""
    if options.sql is not None:
        return f"sql:{redact_db_uri(options.db_uri or '')}\n{options.sql.strip()}"
    if options.url is not None:
        parts = urlsplit(options.url)
        kept = [
            (k, v if k in _PLAIN else _digest(v))
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not _SIGNING.match(k)
        ]  # fmt: skip
        query = f"?{urlencode(kept, safe=':')}" if kept else ""
        return redact_url(options.url, keep_query=False) + query
    return str(options.path.resolve())


def _digest(value: str) -> str:
    """A query parameter's value as the identity keeps it: a digest, since a parameter that
    does not sign the URL may still be a secret (``api_key=``, ``password=``); the identity
    is in summary.json and the journal, and is never to hold one."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def secrets_of(options: InputOptions) -> tuple[str, ...]:
    """The parts of the source's URL or URI that are never shown: passwords, query strings."""
    out: list[str] = []
    for text in (options.url, options.db_uri):
        if not text or not _URL.match(text):
            continue
        parts = urlsplit(text)
        out += [p for p in (parts.password, parts.query) if p]
        if parts.password:
            out.append(unquote(parts.password))
    return tuple(sorted(set(out), key=len, reverse=True))


DB_URI_ENV = "KIRIM_SOURCE_DB"


@dataclass(frozen=True, slots=True)
class Where:
    """The source the options name: a path, a URL (and its stand-in path) or a query."""

    path: Path
    url: str | None = None
    sql: str | None = None
    db_uri: str | None = None


def where(
    source: Path | str | os.PathLike[str] | None,
    *,
    sql: str | None = None,
    sql_file: Path | str | None = None,
    db_uri_env: str | None = None,
    db_uri: str | None = None,
) -> Where:
    """The source, checked: exactly one of a path or URL, ``--sql`` and ``--sql-file``; a
    query's URI from ``db_uri`` (the API's) or the environment variable, never a flag."""
    given = [n for n, on in (("SOURCE", bool(source)), ("--sql", sql is not None),
                             ("--sql-file", sql_file is not None)) if on]  # fmt: skip
    if len(given) > 1:
        raise UsageError(f"give one source: {' and '.join(given)} were both given")
    if not given:
        raise UsageError("give the input: a file, a URL, --sql QUERY or --sql-file FILE")
    if sql_file:
        try:
            sql = Path(sql_file).read_text("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"--sql-file {sql_file}: cannot read it ({why})") from None
    if sql is not None:
        if not sql.strip():
            raise UsageError(f"--sql-file {sql_file}: the query is empty" if sql_file is not None
                             else "--sql: the query is empty")  # fmt: skip
        name = db_uri_env or DB_URI_ENV
        uri = (db_uri if db_uri is not None else os.environ.get(name, "")).strip()
        if not uri:
            raise UsageError(
                f"--sql needs the database URI in the environment variable {name} (e.g. "
                "postgresql://user:password@host/db or sqlite:///path/to/file.db); "
                "it is never a flag, since it holds a password"
            )
        if not _URL.match(uri):
            raise UsageError(f"{name}: expected a URI such as postgresql://host/db, not a path")
        return Where(path=SQL_PATH, sql=sql.strip().rstrip(";").strip(), db_uri=uri)
    if db_uri_env is not None or db_uri is not None:
        raise UsageError("--db-uri-env goes with --sql or --sql-file")
    if is_url(str(source)) and not isinstance(source, Path):
        url = check_url(str(source))
        return Where(path=stand_in(url), url=url)
    return Where(path=Path(source))  # type: ignore[arg-type]
