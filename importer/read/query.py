"""A database query as the input: its rows, a batch at a time, every column as text.

``--sql QUERY`` (or ``--sql-file FILE``) with the database's URI in an environment variable
(``--db-uri-env``, default ``KIRIM_SOURCE_DB``). SQLite (``sqlite:///path``) and PostgreSQL
(``postgresql://``) are read through their ADBC drivers, the engine polars'
``read_database_uri(engine="adbc")`` uses, as a stream of Arrow record batches (polars'
``read_database_uri`` itself reads the whole result at once): memory stays flat however many
rows the query returns. Any other URI (``mysql://``, ``mssql://``, ``oracle://``, ...) is
read with ``polars.read_database_uri`` through ConnectorX when it is installed (``pip
install connectorx``): that should work, untested, and reads the whole result at once.

Rows are numbered in the query's order (give it an ``ORDER BY`` for a stable order) as a file's
are: an all-empty row is skipped and not counted. Every column becomes text (dates ISO,
numbers their digits); a phone column of a numeric SQL type is refused, since a number
cannot hold a leading ``+`` or ``0``: the message says to ``CAST`` it to text in the query.

The query runs once per reading: the run's first reading uses the execution that found the
columns, so a run normally runs the query once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from importer.errors import InputError
from importer.options import InputOptions
from importer.read import location
from importer.read.frames import Opened, check_headers, kept_columns, numbered
from importer.read.records import SourceInfo
from importer.validate import mapping

_ADBC = ("sqlite", "postgresql", "postgres")
_PG_NUMERIC = ("int2", "int4", "int8", "numeric", "float4", "float8", "money", "oid")


class _Stream:
    """An executed query: its connection, cursor and Arrow record batch reader."""

    def __init__(self, uri: str, sql: str, shown: str) -> None:
        self.shown = shown
        self._connection: Any = None
        self._cursor: Any = None
        try:
            self._connection = _connect(uri)
            self._cursor = self._connection.cursor()
            self._cursor.execute(sql)
            self.reader: pa.RecordBatchReader = self._cursor.fetch_record_batch()
        except InputError:
            self.close()
            raise
        except Exception as exc:  # the driver's errors: bad SQL, a missing table, refused login
            self.close()
            raise InputError(f"{shown}: {_first_line(exc)}") from None

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self.reader
        except Exception as exc:
            raise InputError(f"{self.shown}: reading the rows failed: {_first_line(exc)}") from None
        finally:
            self.close()

    def close(self) -> None:
        for thing in (self._cursor, self._connection):
            if thing is not None:
                with contextlib.suppress(Exception):  # a broken connection: nothing to add
                    thing.close()
        self._cursor = self._connection = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _connect(uri: str) -> Any:
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "sqlite":
        import adbc_driver_sqlite.dbapi

        path = unquote(uri.split("://", 1)[1])
        path = path[1:] if path.startswith("/") else path  # sqlite:///rel, sqlite:////abs
        if path and path != ":memory:" and not Path(path).is_file():
            raise InputError(f"{uri}: no such SQLite database file")
        return adbc_driver_sqlite.dbapi.connect(path or ":memory:")
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(uri)


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


def _as_text(batch: pa.RecordBatch, names: list[str], shown: str) -> pl.DataFrame:
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
    table = pa.Table.from_arrays(columns, names=names)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.cast(pl.String)


def _check_phone(schema: pa.Schema, options: InputOptions, names: list[str], shown: str) -> None:
    """A phone column of a numeric type has lost its ``+`` and leading ``0``: refuse it."""
    columns = kept_columns(names)
    colmap = mapping.resolve(columns=columns, options=options)
    for name in (colmap.phone, *colmap.phone_fallbacks):
        index = names.index(name)
        field = schema.field(index)
        if _is_numeric(field):
            original = schema.names[index]
            raise InputError(
                f"{shown}: the phone column {original!r} is a number ({_type_name(field)}), which "
                f"loses a leading '+' or '0'; read it as text in the query: "
                f"CAST({original} AS TEXT)"
            )


def open_query(options: InputOptions) -> Opened:
    """Run the query, check its columns, and return the reading (``InputError`` if unusable)."""
    sql, uri = options.sql or "", options.db_uri or ""
    shown = location.shown(options)
    if not sql.strip():
        raise InputError("the SQL query is empty")
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in _ADBC:
        return _connectorx(options, shown)
    first: list[_Stream] = [_Stream(uri, sql, shown)]
    try:
        schema = first[0].reader.schema
        names = check_headers(
            path=Path("the SQL query"),
            raw=list(schema.names),
            where=lambda i: f"column {i + 1} ({schema.names[i]!r})",
        )
        _check_phone(schema, options, names, shown)
    except BaseException:
        first[0].close()
        raise

    def read() -> Iterator[pl.DataFrame]:
        stream = first.pop() if first else _Stream(uri, sql, shown)
        return numbered(_as_text(b, names, shown) for b in _rebatch(stream.batches(), options))

    info = SourceInfo(
        path=options.path, format="sql", columns=kept_columns(names), shown=shown
    )
    return Opened(info=info, rows=None, read=read)


def _rebatch(
    batches: Iterator[pa.RecordBatch], options: InputOptions
) -> Iterator[pa.RecordBatch]:
    """The driver's record batches cut to at most ``batch_size`` rows."""
    for batch in batches:
        for start in range(0, batch.num_rows, options.batch_size):
            yield batch.slice(start, options.batch_size)


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
        raise InputError(f"{shown}: {_first_line(exc)}") from None
    schema = frame.to_arrow().schema
    names = check_headers(
        path=Path("the SQL query"), raw=frame.columns, where=lambda i: f"column {i + 1}"
    )
    _check_phone(schema, options, names, shown)
    text = frame.rename(dict(zip(frame.columns, names, strict=True))).cast(pl.String)
    read: Callable[[], Iterator[pl.DataFrame]] = lambda: numbered(  # noqa: E731
        iter(text.iter_slices(options.batch_size))
    )
    info = SourceInfo(path=options.path, format="sql", columns=kept_columns(names), shown=shown)
    return Opened(info=info, rows=None, read=read)
