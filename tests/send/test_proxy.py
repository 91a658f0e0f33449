"""Proxies and CA settings from the environment, as httpx's default client reads them: a real
import through a real forward proxy on loopback (``tests/proxy.py``), plain and over TLS."""

from __future__ import annotations

import json
import sqlite3
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from importer.cli import main
from importer.sandbox import Sandbox, SandboxConfig
from tests.conftest import contacts_file
from tests.proxy import ForwardProxy

PROXY_VARS = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as running:
        yield running


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_sandbox(ca: trustme.CA) -> Sandbox:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return Sandbox(SandboxConfig(seed=3), ssl_context=context)


def _run(box: Sandbox, tmp: Path, monkeypatch: pytest.MonkeyPatch, n: int = 5) -> tuple[int, Path]:
    monkeypatch.setenv("KIRIM_API_KEY", box.token)
    file = contacts_file(tmp / "in.csv", n)
    reports = tmp / "reports"
    code = main(
        ["run", str(file), "--base-url", box.base_url, "--report-dir", str(reports),
         "--state", str(tmp / "journal.sqlite"), "--default-region", "ID"]
    )  # fmt: skip
    return code, reports


def _summary(reports: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reports / "summary.json").read_text())
    return data


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_every_request_goes_through_the_proxy(
    variable: str, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    with Sandbox(SandboxConfig(seed=1)) as box:
        code, reports = _run(box, tmp_path, monkeypatch)
        served = sum(r["count"] for r in box.stats()["requests"])
    assert code == 0
    assert _summary(reports)["created"] == 5
    port = box.base_url.split(":")[2].split("/")[0]
    seen = proxy.seen
    assert {s.target for s in seen} == {f"127.0.0.1:{port}"}
    paths = [f"{s.method} {s.path.split('?')[0]}" for s in seen]
    assert paths[:2] == ["GET /v1/me", "GET /v1/accounts"]
    assert paths.count(f"POST /v1/{box.account_id}/contacts") == 5
    assert len(seen) == _summary(reports)["requests_sent"] == served  # nothing went around it


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_bypasses_it(
    no_proxy: str, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    with Sandbox(SandboxConfig(seed=1)) as box:
        code, reports = _run(box, tmp_path, monkeypatch)
    assert code == 0
    assert _summary(reports)["created"] == 5
    assert proxy.seen == []


def test_https_through_the_proxy_with_the_ca_from_ssl_cert_file(
    ca: trustme.CA, proxy: ForwardProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with _tls_sandbox(ca) as box:
        assert box.base_url.startswith("https://127.0.0.1:")
        code, reports = _run(box, tmp_path, monkeypatch)
        contacts = box.contacts()
    assert code == 0
    assert len(contacts) == _summary(reports)["created"] == 5
    port = box.base_url.split(":")[2].split("/")[0]
    # only tunnels: the proxy never saw a request line, a header or the key
    assert {(s.method, s.target, s.path) for s in proxy.seen} == {
        ("CONNECT", f"127.0.0.1:{port}", "")
    }


def test_a_certificate_that_does_not_verify_is_refused_clearly(
    ca: trustme.CA,
    proxy: ForwardProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)  # no SSL_CERT_FILE: the test CA is unknown
    with _tls_sandbox(ca) as box:
        code, _ = _run(box, tmp_path, monkeypatch)
        stats = box.stats()
    err = capsys.readouterr().err
    assert code == 3
    assert "TLS certificate was refused" in err
    assert "SSL_CERT_FILE" in err
    assert "Traceback" not in err
    assert stats["contacts"] == []
    assert len(proxy.seen) == 1  # one try: a bad certificate is not retried
    journal = tmp_path / "journal.sqlite"
    if journal.exists():  # nothing journalled as sent
        with sqlite3.connect(journal) as db:
            assert db.execute("SELECT count(*) FROM contacts").fetchone() == (0,)
