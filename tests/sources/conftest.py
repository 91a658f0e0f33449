"""Real servers for the sources' tests, one of each per test session: a PostgreSQL server
(``initdb``/``pg_ctl`` in a temporary folder, on 127.0.0.1, password auth), an S3-compatible
server (moto's server mode, on loopback, IAM enforced: a reader's key can read one bucket and
not the other), and an HTTPS server with a throwaway CA (``trustme``). PostgreSQL and moto are
started by ``tests/servers.py``, which the benchmarks use too.

When PostgreSQL or moto is missing the tests that need it skip, except under ``CI=true``
(``.ci/run`` installs both), where they fail.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import polars as pl
import pytest

from tests import servers
from tests.conftest import phone

PG_PASSWORD = "pg-Secret-7f3a"


def missing(why: str) -> NoReturn:
    """Skip, or fail under CI, where the server is installed on purpose."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {why}")
    pytest.skip(why)


def contact_rows(n: int, start: int = 1) -> list[dict[str, str]]:
    return [
        {"crm_id": f"C{i:07d}", "phone": phone(i), "name": f"Contact {i}",
         "email": f"c{i}@example.com"}
        for i in range(start, start + n)
    ]  # fmt: skip


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    return pl.DataFrame(rows).write_csv().encode()


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass
class Postgres:
    uri: str  # with its password, as KIRIM_SOURCE_DB holds it

    def execute(self, *statements: str) -> None:
        import adbc_driver_postgresql.dbapi as pg

        with pg.connect(self.uri) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            conn.commit()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    if servers.pg_bin() is None:
        missing("PostgreSQL's server (initdb, pg_ctl) is not installed")
    with servers.postgres(PG_PASSWORD) as uri:
        yield Postgres(uri)


# --- S3 (moto's server) ---------------------------------------------------------------------

BUCKET, LOCKED = "crm-exports", "finance-only"


@dataclass
class S3:
    endpoint: str
    reader: dict[str, str]  # the AWS_* variables of a key that can read BUCKET only
    objects: dict[str, int] = field(default_factory=dict)  # key -> data rows


def _xlsx(rows: list[dict[str, str]]) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame(rows).write_excel(buffer)
    return buffer.getvalue()


def _parquet(rows: list[dict[str, str]]) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame(rows).write_parquet(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    try:
        import boto3
        import moto.server  # noqa: F401
    except ImportError:
        missing("moto[server] is not installed (pip install -e '.[test]')")
    with servers.moto() as endpoint:
        admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin",
                 "region_name": "us-east-1", "endpoint_url": endpoint}  # fmt: skip
        s3 = boto3.client("s3", **admin)
        iam = boto3.client("iam", **admin)
        for bucket in (BUCKET, LOCKED):
            s3.create_bucket(Bucket=bucket)
        rows = contact_rows(30)
        objects = {
            "contacts.csv": csv_bytes(rows),
            "nightly/contacts.csv.gz": gzip.compress(csv_bytes(rows)),
            "contacts.parquet": _parquet(rows),
            "contacts.xlsx": _xlsx(rows),
            "cp1252.csv": "phone;name\n+6281200000001;Zoë\n".encode("cp1252"),
        }
        for key, body in objects.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        s3.put_object(Bucket=LOCKED, Key="contacts.csv", Body=csv_bytes(rows))
        iam.create_user(UserName="importer")
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]}]}  # fmt: skip
        iam.put_user_policy(
            UserName="importer", PolicyName="read-exports", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName="importer")["AccessKey"]
        # from now on the server checks every request against IAM, as S3 does
        import httpx

        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
        reader = {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        yield S3(endpoint=endpoint, reader=reader, objects={k: 30 for k in objects})


@pytest.fixture
def s3(s3_server: S3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3:
    """The S3 server, with the reader's key in the environment as the SDKs read it."""
    for name, value in s3_server.reader.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return s3_server


# --- HTTPS ----------------------------------------------------------------------------------


@dataclass
class Https:
    base: str  # https://127.0.0.1:PORT
    other: str  # the same server named https://localhost:PORT: another host
    seen: list[tuple[str, str | None]]  # (host header + path, Authorization header) per request
    live: dict[str, bytes] = field(default_factory=dict)  # path -> body, as a test sets it


@dataclass
class _Routes:
    body: bytes
    seen: list[tuple[str, str | None]]
    other: str = ""
    live: dict[str, bytes] = field(default_factory=dict)


def _handler(routes: _Routes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            routes.seen.append((f"{self.headers.get('Host')}{self.path}",
                                self.headers.get("Authorization")))  # fmt: skip
            if path == "/private/contacts.csv":
                if self.headers.get("Authorization") is None:
                    self._send(401, b"who are you", {"WWW-Authenticate": 'Basic realm="crm"'})
                    return
                self._send(200, routes.body)
            elif path in ("/contacts.csv", "/presigned/contacts.csv", "/export"):
                self._send(200, routes.body)
            elif path in routes.live:  # an export that changes from night to night
                self._send(200, routes.live[path])
            elif path == "/moved/contacts.csv":
                self._send(302, b"", {"Location": f"{routes.other}/contacts.csv"})
            elif path == "/cut/contacts.csv":
                self.send_response(200)
                self.send_header("Content-Length", str(len(routes.body)))
                self.end_headers()
                self.wfile.write(routes.body[: len(routes.body) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif path == "/insecure/contacts.csv":
                self._send(302, b"", {"Location": "http://example.com/contacts.csv"})
            else:
                self._send(404, b"not here")

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture(scope="session")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Https, Path]]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    routes = _Routes(body=csv_bytes(contact_rows(12)), seen=[])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    routes.other = f"https://localhost:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Https(f"https://127.0.0.1:{port}", routes.other, routes.seen, routes.live), bundle
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def https(
    https_server: tuple[Https, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Https]:
    """The HTTPS server, its CA trusted through SSL_CERT_FILE; requests seen by this test."""
    server, bundle = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server.seen.clear()
    server.live.clear()
    return server
