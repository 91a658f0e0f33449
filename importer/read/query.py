"""A database query as the input: its rows, a batch at a time, every column as text.

``--sql QUERY`` (or ``--sql-file FILE``) with the database's URI in an environment variable
(``--db-uri-env``, default ``KIRIM_SOURCE_DB``). Memory stays flat however many rows the
query returns: no engine here reads the whole result at once.

- PostgreSQL (``postgresql://``) is read through its ADBC driver, the engine of polars'
  ``read_database_uri(engine="adbc")``, as a stream of Arrow record batches (polars'
  ``read_database_uri`` itself returns the whole result at once). Column types are the
  server's.
- SQLite (``sqlite:///relative.db``, ``sqlite:////absolute.db``) is read with Python's own
  ``sqlite3`` module, ``fetchmany`` a batch at a time: a SQLite column may hold integers on
  one row and text on the next, which Arrow drivers refuse mid-read. A value's own type is
  its type.
- Any other URI (``mysql://``, ``mssql://``, ``oracle://``, ...) is read with
  ``polars.read_database_uri`` through ConnectorX when it is installed (``pip install
  connectorx``): that should work, untested, and reads the whole result at once.

Rows are numbered in the query's order (give it an ``ORDER BY``) as a file's are: an
all-empty row is skipped and not counted. Every column becomes text (dates ISO, booleans
``true``/``false``, whole numbers their digits); a phone column of a numeric type (the
server's type; for SQLite, a number among the first batch's phone values) is refused, since
a number cannot hold a leading ``+`` or ``0``: the message says to ``CAST`` it in the query.

The query runs once per reading: the first reading uses the execution that found the
columns, so a run normally runs the query once.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from importer.errors import InputError
from importer.options import InputOptions
from importer.read import headers, location
from importer.read.frames import Opened, check_headers, kept_columns, numbered
from importer.read.records import SourceInfo
from importer.redact import REDACTED

_PG_NUMERIC = ("int2", "int4", "int8", "numeric", "float4", "float8", "money", "oid")


def _first_line(exc: BaseException, uri: str) -> str:
    """The driver's first line, without the URI's password or query string should a driver
    quote its connection string (the message is printed, and a plan redacts nothing)."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    parts = urlsplit(uri)
    password = (parts.password or "") if "://" in uri else ""
    for secret in sorted({password, unquote(password), parts.query} - {""}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    return text


class _Stream:
    """An executed query: its column names, the columns of a numeric type, and its rows as
    text frames (``frames``, once)."""

    names: list[str]
    numeric: dict[int, str]  # column index -> its numeric type, as the database names it

    def __init__(self, shown: str, batch_size: int, uri: str) -> None:
        self.shown = shown
        self.batch_size = batch_size
        self.uri = uri
        self._closers: list[Any] = []

    def frames(self, names: list[str]) -> Iterator[pl.DataFrame]:
        try:
            yield from self._frames(names)
        except InputError:
            raise
        except Exception as exc:
            said = _first_line(exc, self.uri)
            raise InputError(f"{self.shown}: reading the rows failed: {said}") from None
        finally:
            self.close()

    def _frames(self, names: list[str]) -> Iterator[pl.DataFrame]:
        raise NotImplementedError

    def close(self) -> None:
        for thing in reversed(self._closers):
            with contextlib.suppress(Exception):  # a broken connection: nothing to add
                thing.close()
        self._closers = []


class _Postgres(_Stream):
    """PostgreSQL through ADBC: Arrow record batches, types from the server."""

    def __init__(self, uri: str, sql: str, shown: str, batch_size: int) -> None:
        super().__init__(shown, batch_size, uri)
        import adbc_driver_postgresql.dbapi

        try:
            connection = adbc_driver_postgresql.dbapi.connect(uri)
            self._closers.append(connection)
            cursor = connection.cursor()
            self._closers.append(cursor)
            cursor.execute(sql)
            self._reader: pa.RecordBatchReader = cursor.fetch_record_batch()
        except Exception as exc:  # bad SQL, a missing table, a refused login
            self.close()
            raise InputError(f"{shown}: {_first_line(exc, uri)}") from None
        schema = self._reader.schema
        self.names = list(schema.names)
        self.numeric = {
            i: _type_name(f) for i, f in enumerate(schema) if _is_numeric(f)
        }

    def _frames(self, names: list[str]) -> Iterator[pl.DataFrame]:
        for batch in self._reader:
            for start in range(0, batch.num_rows, self.batch_size):
                yield _arrow_as_text(batch.slice(start, self.batch_size), names, self.shown)


class _Sqlite(_Stream):
    """SQLite through the standard library: ``fetchmany``, each value's own type."""

    def __init__(self, uri: str, sql: str, shown: str, batch_size: int) -> None:
        super().__init__(shown, batch_size, uri)
        path = unquote(uri.split("://", 1)[1].split("?", 1)[0])
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
        if not path or not Path(path).is_file():
            raise InputError(f"{shown}: no such SQLite database file")
        try:
            # read-only; the run reads its batches on a worker thread, one at a time
            connection = sqlite3.connect(
                f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            self._closers.append(connection)
            self._cursor = connection.execute(sql)
            description = self._cursor.description
            if description is None:
                raise InputError(f"{shown}: the statement returns no rows (use a SELECT)")
            self.names = [d[0] for d in description]
            self._first = self._cursor.fetchmany(batch_size)
        except InputError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            raise InputError(f"{shown}: {_first_line(exc, uri)}") from None
        self.numeric = {}
        for i in range(len(self.names)):
            kinds = {type(row[i]) for row in self._first if row[i] is not None}
            if kinds & {int, float}:
                self.numeric[i] = "INTEGER" if int in kinds else "REAL"

    def _frames(self, names: list[str]) -> Iterator[pl.DataFrame]:
        rows, self._first = self._first, []
        while rows:
            yield pl.DataFrame(
                [[_text(v) for v in row] for row in rows],
                schema=dict.fromkeys(names, pl.String),
                orient="row",
            )
            rows = self._cursor.fetchmany(self.batch_size)


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _is_numeric(field: pa.Field) -> bool:
    kind = field.type
    if isinstance(kind, pa.ExtensionType):
        kind = kind.storage_type
    pg = (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode()
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pg in _PG_NUMERIC
    )


def _type_name(field: pa.Field) -> str:
    return (field.metadata or {}).get(b"POSTGRESQL:type", b"").decode() or str(field.type)


def _arrow_as_text(batch: pa.RecordBatch, names: list[str], shown: str) -> pl.DataFrame:
    """Every column of ``batch`` as text, under the checked names."""
    columns = []
    for i, column in enumerate(batch.columns):
        if isinstance(column, pa.ExtensionArray):
            column = column.storage
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            try:
                column = pc.cast(column, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise InputError(
                    f"{shown}: column {batch.schema.names[i]!r} ({column.type}) cannot be read "
                    f"as text; CAST it to TEXT in the query"
                ) from None
        columns.append(column)
    frame = pl.from_arrow(pa.Table.from_arrays(columns, names=names))
    assert isinstance(frame, pl.DataFrame)
    return frame.cast(pl.String)


def _check_phone(
    numeric: dict[int, str], options: InputOptions, names: list[str], raw: list[str], shown: str
) -> None:
    """A phone column of a numeric type has lost its ``+`` and leading ``0``: refuse it."""
    found = headers.choose(columns=kept_columns(names), field_map=options.field_map)
    for name in found.columns["phone_number"]:
        index = names.index(name)
        if index in numeric:
            raise InputError(
                f"{shown}: the phone column {raw[index]!r} is a number ({numeric[index]}), "
                f"which loses a leading '+' or '0'; read it as text in the query: "
                f"CAST({raw[index]} AS TEXT)"
            )


def _checked_names(raw: list[str]) -> list[str]:
    return check_headers(
        path=Path("the SQL query"), raw=raw, where=lambda i: f"column {i + 1} ({raw[i]!r})"
    )


def open_query(options: InputOptions) -> Opened:
    """Run the query, check its columns, and return the reading (``InputError`` if unusable)."""
    sql, uri = options.sql or "", options.db_uri or ""
    shown = location.shown(options)
    if not sql.strip():
        raise InputError("the SQL query is empty")
    scheme = urlsplit(uri).scheme.lower()
    kind: type[_Postgres | _Sqlite]
    if scheme == "sqlite":
        kind = _Sqlite
    elif scheme in ("postgresql", "postgres"):
        kind = _Postgres
    else:
        return _connectorx(options, shown)
    first = [kind(uri, sql, shown, options.batch_size)]
    try:
        names = _checked_names(first[0].names)
        _check_phone(first[0].numeric, options, names, first[0].names, shown)
    except BaseException:
        first[0].close()
        raise

    def read() -> Iterator[pl.DataFrame]:
        stream = first.pop() if first else kind(uri, sql, shown, options.batch_size)
        return numbered(stream.frames(names))

    info = SourceInfo(path=options.path, format="sql", columns=kept_columns(names), shown=shown)
    return Opened(info=info, rows=None, read=read)


def _connectorx(options: InputOptions, shown: str) -> Opened:
    """Another engine, through ``polars.read_database_uri`` (ConnectorX): the whole result."""
    try:
        frame = pl.read_database_uri(options.sql or "", options.db_uri or "", engine="connectorx")
    except ImportError:
        raise InputError(
            f"{shown}: this database is read through ConnectorX: pip install connectorx "
            "(SQLite and PostgreSQL need nothing more)"
        ) from None
    except Exception as exc:
        raise InputError(f"{shown}: {_first_line(exc, options.db_uri or '')}") from None
    schema = frame.to_arrow().schema
    names = _checked_names(frame.columns)
    numeric = {i: str(f.type) for i, f in enumerate(schema) if _is_numeric(f)}
    _check_phone(numeric, options, names, frame.columns, shown)
    text = frame.rename(dict(zip(frame.columns, names, strict=True))).cast(pl.String)
    read: Callable[[], Iterator[pl.DataFrame]] = lambda: numbered(  # noqa: E731
        iter(text.iter_slices(options.batch_size))
    )
    info = SourceInfo(path=options.path, format="sql", columns=kept_columns(names), shown=shown)
    return Opened(info=info, rows=None, read=read)
