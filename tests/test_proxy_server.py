"""Tests of the test proxy itself (``tests/proxy.py``), with plain httpx as the client.

Later tests rely on this proxy to prove that the importer honours ``HTTP(S)_PROXY`` and
``NO_PROXY``; that proof is only as good as the proxy, so here it is checked against a real
sandbox, against a raw HTTP server that shows the exact bytes forwarded, and against a TLS
server reached through a CONNECT tunnel. Every address involved is on loopback; non-loopback
addresses only ever appear as strings the proxy must refuse.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trustme

from importer.sandbox import Sandbox, SandboxConfig
from tests.proxy import ForwardProxy, Seen, loopback_addresses


@pytest.fixture
def box() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(seed=7)) as sandbox:
        yield sandbox


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(idle_timeout=5.0) as forward:
        yield forward


def _auth(box: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {box.token}"}


def _client(proxy_url: str) -> httpx.Client:
    """An httpx client that uses exactly ``proxy_url`` (never the environment's settings)."""
    return httpx.Client(proxy=proxy_url, trust_env=False, timeout=5.0)


# --- through the proxy to the sandbox ---------------------------------------------------------


def test_a_get_reaches_the_sandbox_and_is_recorded(box: Sandbox, proxy: ForwardProxy) -> None:
    with _client(proxy.url) as client:
        response = client.get(f"{box.base_url}/me", headers=_auth(box))
    assert response.status_code == 200
    assert response.json()["data"]["organization"]["id"] == box.organization_id
    assert proxy.seen == [Seen("GET", f"127.0.0.1:{box.port}", "/v1/me")]
    assert proxy.dialed == [("127.0.0.1", box.port)]


def test_a_post_with_a_json_body_reaches_the_sandbox(box: Sandbox, proxy: ForwardProxy) -> None:
    with _client(proxy.url) as client:
        response = client.post(
            f"{box.base_url}/labels", json={"name": "Through the proxy"}, headers=_auth(box)
        )
        listed = client.get(f"{box.base_url}/labels?x=1", headers=_auth(box))
    assert response.status_code == 201, response.text
    assert response.json()["data"]["name"] == "Through the proxy"
    assert "Through the proxy" in listed.text
    assert proxy.seen == [
        Seen("POST", f"127.0.0.1:{box.port}", "/v1/labels"),
        Seen("GET", f"127.0.0.1:{box.port}", "/v1/labels?x=1"),
    ]


def test_several_requests_share_one_client_connection(box: Sandbox, proxy: ForwardProxy) -> None:
    with _client(proxy.url) as client:
        statuses = [client.get(f"{box.base_url}/me", headers=_auth(box)).status_code]
        statuses.append(client.post(f"{box.base_url}/labels", json={"name": "a"}).status_code)
        statuses.append(client.get(f"{box.base_url}/me", headers=_auth(box)).status_code)
        statuses.append(
            client.post(
                f"{box.base_url}/labels", json={"name": "b"}, headers=_auth(box)
            ).status_code
        )
    assert statuses == [200, 401, 200, 201]  # a 401 answer does not end the connection either
    assert len(proxy.seen) == 4
    assert proxy.connections == 1


def test_localhost_is_dialled_on_loopback_without_a_lookup(
    box: Sandbox, proxy: ForwardProxy
) -> None:
    with _client(proxy.url) as client:
        response = client.get(f"http://localhost:{box.port}/v1/me", headers=_auth(box))
    assert response.status_code == 200
    assert proxy.seen == [Seen("GET", f"localhost:{box.port}", "/v1/me")]
    assert proxy.dialed[0] == ("127.0.0.1", box.port)


# --- the bytes forwarded, against a raw HTTP server ------------------------------------------


class RawUpstream:
    """A hand-written HTTP/1.1 server on loopback that keeps every request's exact bytes.

    ``/chunked`` answers with a chunked body, ``/close`` with a body delimited by closing the
    connection, anything else echoes the request body with a Content-Length.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[bytes] = []
        self.host = host
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                if re.search(rb"(?im)^transfer-encoding: *chunked", head):
                    raw_body = await reader.readuntil(b"\r\n0\r\n\r\n")
                    body = _dechunk(raw_body)
                else:
                    raw_body = body = await reader.readexactly(int(length[1]) if length else 0)
                self.requests.append(head + raw_body)
                path = head.split(b" ", 2)[1]
                if path == b"/chunked":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    )
                elif path == b"/close":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                    await writer.drain()
                    return
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Echo: yes\r\n\r\n%s"
                        % (len(body), body)
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def _dechunk(raw: bytes) -> bytes:
    """The payload of a chunked body (no extensions or trailers: only what h11 sends)."""
    out, rest = b"", raw
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2 :]


def test_requests_are_forwarded_in_origin_form_without_hop_by_hop_headers() -> None:
    async def scenario(proxy: ForwardProxy) -> tuple[bytes, httpx.Response]:
        async with RawUpstream() as upstream:
            async with httpx.AsyncClient(
                proxy=proxy.url.replace("http://", "http://user:pw@"), trust_env=False
            ) as client:
                response = await client.post(
                    f"http://127.0.0.1:{upstream.port}/echo?x=1",
                    content=b"sized body",
                    headers={
                        "Proxy-Connection": "keep-alive",
                        "Connection": "keep-alive, X-Hop",
                        "X-Hop": "dropped",
                        "X-End-To-End": "kept",
                    },
                )
            return upstream.requests[0], response

    with ForwardProxy(require_auth=("user", "pw")) as proxy:
        raw, response = asyncio.run(scenario(proxy))
        port = proxy.seen[0].target.rsplit(":", 1)[1]
    head = raw.split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("post /echo?x=1 http/1.1\r\n")
    assert f"\r\nhost: 127.0.0.1:{port}\r\n" in head
    assert "x-end-to-end: kept" in head
    for gone in ("proxy-connection", "proxy-authorization", "x-hop", "connection:"):
        assert gone not in head
    assert response.status_code == 200
    assert response.headers["X-Echo"] == "yes"
    assert response.content == b"sized body"


def test_chunked_and_close_delimited_bodies_keep_the_client_connection() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"part": 1,'
        yield b' "part2": 2}'

    async def scenario(proxy: ForwardProxy) -> tuple[list[bytes], list[bytes]]:
        async with (
            RawUpstream() as upstream,
            httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client,
        ):
            base = f"http://127.0.0.1:{upstream.port}"
            bodies = [
                (await client.post(f"{base}/echo", content=parts())).content,
                (await client.get(f"{base}/chunked")).content,
                (await client.get(f"{base}/close")).content,
                (await client.get(f"{base}/chunked")).content,
            ]
            return bodies, upstream.requests

    with ForwardProxy() as proxy:
        bodies, requests = asyncio.run(scenario(proxy))
        connections = proxy.connections
    assert bodies == [b'{"part": 1, "part2": 2}', b"hello world", b"until the end", b"hello world"]
    assert b"transfer-encoding: chunked" in requests[0].lower()  # still chunked upstream
    assert connections == 1  # a close-delimited answer is re-framed, not a reason to hang up


def test_ipv6_loopback_targets_work_though_httpcore_leaves_out_the_brackets() -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")

    async def scenario(proxy: ForwardProxy) -> tuple[int, bytes]:
        async with (
            RawUpstream("::1") as upstream,
            httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client,
        ):
            response = await client.post(f"http://[::1]:{upstream.port}/v6", content=b"six")
            return upstream.port, response.content

    with ForwardProxy() as proxy:
        port, body = asyncio.run(scenario(proxy))
        seen, dialed = proxy.seen, proxy.dialed
    assert body == b"six"
    assert seen == [Seen("POST", f"[::1]:{port}", "/v6")]
    assert dialed == [("::1", port)]


def test_an_upstream_that_refuses_the_connection_gives_502(proxy: ForwardProxy) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with _client(proxy.url) as client:
        response = client.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 502
    assert proxy.dialed == [("127.0.0.1", port)]


# --- CONNECT tunnels --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _tls_server(ca: trustme.CA) -> asyncio.Server:
    """An HTTPS server on 127.0.0.1 that answers every request with its path, keep-alive."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = b"secret of " + head.split(b" ", 2)[1]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


def test_https_goes_through_a_connect_tunnel(ca: trustme.CA) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)

    async def scenario(proxy: ForwardProxy) -> tuple[int, list[bytes]]:
        server = await _tls_server(ca)
        port = int(server.sockets[0].getsockname()[1])
        try:
            async with httpx.AsyncClient(
                proxy=proxy.url, verify=trusting, trust_env=False
            ) as client:
                first = await client.get(f"https://127.0.0.1:{port}/one")
                second = await client.get(f"https://127.0.0.1:{port}/two")
            return port, [first.content, second.content]
        finally:
            server.close()

    with ForwardProxy() as proxy:
        port, bodies = asyncio.run(scenario(proxy))
        seen = proxy.seen
    assert bodies == [b"secret of /one", b"secret of /two"]
    assert seen == [Seen("CONNECT", f"127.0.0.1:{port}", "")]  # one tunnel, two requests


def test_stop_closes_open_tunnels_promptly() -> None:
    async def scenario() -> tuple[float, bytes]:
        hold = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await hold.wait()  # an upstream that never answers nor closes
            finally:
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        proxy = ForwardProxy().start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % port)
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            started = time.monotonic()
            await asyncio.to_thread(proxy.stop)
            elapsed = time.monotonic() - started
            try:
                tail = await asyncio.wait_for(reader.read(), 2.0)
            except ConnectionError:
                tail = b""
            writer.close()
            return elapsed, tail
        finally:
            proxy.stop()
            hold.set()
            server.close()

    elapsed, tail = asyncio.run(scenario())
    assert elapsed < 4.5  # bounded: stop() gives up on a connection after 5 s
    assert tail == b""  # the proxy's end of the tunnel is gone


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("192.0.2.1", "192.0.2.1"),  # TEST-NET-1: only ever a string here
        ("[2001:db8::1]", "[2001:db8::1]"),  # the IPv6 documentation prefix
        ("example.invalid", "example.invalid"),  # refused before any name lookup
        ("127.1", "127.1"),  # a shorthand the resolver would map to loopback: refused anyway
    ],
)
def test_non_loopback_targets_get_403_without_a_connection(
    proxy: ForwardProxy, host: str, target: str
) -> None:
    with _client(proxy.url) as client:
        refused = client.post(f"http://{host}:8080/x?y", content=b"body")
        again = client.get(f"http://{host}:8080/")
        with pytest.raises(httpx.ProxyError, match="403"):
            client.get(f"https://{host}/")
    assert refused.status_code == again.status_code == 403
    assert proxy.seen == [
        Seen("POST", f"{target}:8080", "/x?y"),
        Seen("GET", f"{target}:8080", "/"),
        Seen("CONNECT", f"{target}:443", ""),
    ]
    assert proxy.connections == 2  # the 403s kept their connection; the tunnel needs another
    assert proxy.dialed == []


def test_missing_or_wrong_proxy_credentials_get_407(box: Sandbox) -> None:
    with ForwardProxy(require_auth=("user", "s3cret")) as proxy:
        wrong = proxy.url.replace("http://", "http://user:nope@")
        right = proxy.url.replace("http://", "http://user:s3cret@")
        with _client(proxy.url) as client:
            missing = client.get(f"{box.base_url}/me", headers=_auth(box))
            with pytest.raises(httpx.ProxyError, match="407"):
                client.get("https://127.0.0.1:1/")
        with _client(wrong) as client:
            bad = client.get(f"{box.base_url}/me", headers=_auth(box))
        with _client(right) as client:
            good = client.get(f"{box.base_url}/me", headers=_auth(box))
        dialed = proxy.dialed
    assert missing.status_code == bad.status_code == 407
    assert missing.headers["Proxy-Authenticate"].startswith("Basic ")
    assert good.status_code == 200
    assert dialed == [("127.0.0.1", box.port)]  # only the authorised request went anywhere


def test_an_origin_form_request_is_not_a_proxy_request(proxy: ForwardProxy) -> None:
    response = httpx.get(f"{proxy.url}/v1/me", trust_env=False)  # the proxy as the server
    assert response.status_code == 400
    assert proxy.seen == [Seen("GET", "/v1/me", "")]
    assert proxy.dialed == []


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("127.0.0.1", ("127.0.0.1",)),
        ("127.200.3.4", ("127.200.3.4",)),
        ("::1", ("::1",)),
        ("LOCALHOST", ("127.0.0.1", "::1")),
        ("192.0.2.1", ()),
        ("10.0.0.1", ()),
        ("0.0.0.0", ()),
        ("::ffff:127.0.0.1", ()),  # loopback in effect, but refused: the rule stays simple
        ("localhost.example", ()),
        ("2130706433", ()),
    ],
)
def test_loopback_addresses(host: str, addresses: tuple[str, ...]) -> None:
    assert loopback_addresses(host) == addresses
