"""The sandbox over TLS with a throwaway ``trustme`` CA."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator

import httpx
import pytest
import trustme

from importer.sandbox import Sandbox, SandboxConfig, serve
from tests.sandbox.fixtures import UNLIMITED, client_for, contacts_path, phone, server_errors


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="module")
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def tls_sandbox(server_ctx: ssl.SSLContext) -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(**UNLIMITED), ssl_context=server_ctx) as sb:
        yield sb


def test_https_with_the_ca(tls_sandbox: Sandbox, client_ctx: ssl.SSLContext) -> None:
    sb = tls_sandbox
    assert sb.base_url == f"https://127.0.0.1:{sb.port}/v1"
    with client_for(sb, verify=client_ctx) as http:
        me = http.get("/me")
        assert me.status_code == 200
        assert me.json()["data"]["organization"]["id"] == sb.organization_id
        assert http.post(contacts_path(sb), json={"phone_number": phone(1)}).status_code == 201
        root = sb.base_url.removesuffix("/v1")
        assert http.get(root + "/_sandbox/state").json()["creations_by_phone"] == {phone(1): 1}


def test_https_without_the_ca_fails_verification(tls_sandbox: Sandbox) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_sandbox.base_url + "/me")  # the system's trust store only
    plain = tls_sandbox.base_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain + "/me", timeout=2.0)  # and no plain HTTP on that port


def test_misbehaviour_over_tls(
    tls_sandbox: Sandbox, client_ctx: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    sb = tls_sandbox
    sb.set_faults(html_rate=1.0)
    with client_for(sb, verify=client_ctx) as http:
        resp = http.post(contacts_path(sb), json={"phone_number": phone(1)})
        assert resp.headers["Content-Type"].startswith("text/html")
        sb.set_faults(html_rate=0.0, endless_rate=1.0)
        with http.stream("POST", contacts_path(sb), json={"phone_number": phone(1)}) as stream:
            chunks = stream.iter_raw()
            assert next(chunks)
            assert next(chunks)
        assert http.get("/me").status_code == 200
    assert sb.contacts() == []
    sb.stop()
    assert server_errors(caplog) == []


def test_serve_with_tls(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    urls: list[str] = []

    async def main() -> None:
        stop = asyncio.Event()

        def ready(base_url: str, token: str) -> None:
            urls.append(base_url)
            stop.set()

        await serve(SandboxConfig(), ready=ready, stop=stop, ssl_context=server_ctx)

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    thread.join(timeout=10)
    assert urls
    assert urls[0].startswith("https://127.0.0.1:")
