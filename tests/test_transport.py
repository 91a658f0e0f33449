"""The HTTP/1.1 transport against raw loopback servers: answers, and each network fault named."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import trustme

from importer.client import KirimClient
from importer.transport import HttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler, call: Callable[[str], Awaitable[httpx.Response]]) -> object:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await call(f"http://127.0.0.1:{port}/v1/me")
    finally:
        server.close()
        await server.wait_closed()


def _request(
    url: str,
    content: bytes | None = None,
    *,
    method: str = "POST",
    read: float = 5.0,
    pool: float = 5.0,
) -> httpx.Request:
    """A request with the timeout extension a transport reads, as KirimClient sends it."""
    timeout = {"connect": 5.0, "read": read, "write": 5.0, "pool": pool}
    return httpx.Request(method, url, content=content, extensions={"timeout": timeout})


async def _send(url: str, *, read_s: float = 5.0) -> httpx.Response:
    transport = HttpTransport(max_connections=4)
    try:
        request = _request(url, b'{"a":1}', read=read_s)
        response = await transport.handle_async_request(request)
        await response.aread()
        return response
    finally:
        await transport.aclose()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


def test_a_whole_answer_with_headers_and_gzip_decoded() -> None:
    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await _read_request(reader))
        body = gzip.compress(b'{"data":{"id":"c1"}}')
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"X-RateLimit-Remaining: 7\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    response = asyncio.run(_serve(handler, _send))
    assert isinstance(response, httpx.Response)
    assert got == [b'{"a":1}']
    assert response.status_code == 201
    assert response.reason_phrase == "Created"
    assert response.json() == {"data": {"id": "c1"}}
    assert response.headers["x-ratelimit-remaining"] == "7"


def test_a_refused_connection_is_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens there
    with pytest.raises(httpx.ConnectError):
        asyncio.run(_send(f"http://127.0.0.1:{port}/v1/me"))


def test_a_dropped_connection_is_remote_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.close()  # the request landed; no answer

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(_serve(handler, _send))


def test_no_answer_within_the_read_timeout_is_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await reader.read()  # holds the connection open until the client gives up

    async def call(url: str) -> httpx.Response:
        return await _send(url, read_s=0.2)

    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(_serve(handler, call))


def test_the_client_names_the_fault_in_its_reply() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go() -> object:
        async with KirimClient(base_url=f"http://127.0.0.1:{port}/v1", api_key="k") as client:
            return await client.me()

    reply = asyncio.run(go())
    assert getattr(reply, "status", None) == 0
    assert getattr(reply, "error_code", None) == "ConnectError"


# --- the pool: keep-alive, framing, limits -------------------------------------------------


def _answer(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Length: " + str(len(body)).encode(), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def _many(url: str, count: int, *, transport: HttpTransport) -> list[httpx.Response]:
    out = []
    for i in range(count):
        out.append(await transport.handle_async_request(_request(url, b"%d" % i)))
    return out


async def _fresh_many(url: str, count: int, max_connections: int) -> list[httpx.Response]:
    """``count`` requests in turn through a new transport, closed afterwards."""
    transport = HttpTransport(max_connections=max_connections)
    try:
        return await _many(url, count, transport=transport)
    finally:
        await transport.aclose()


def test_a_keep_alive_connection_is_reused_and_a_closing_one_is_not() -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while not reader.at_eof():
            try:
                body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            close = body == b"1"  # the second request's answer closes its connection
            writer.write(_answer(b"n" + body, *([b"Connection: close"] if close else [])))
            await writer.drain()
            if close:
                break
        writer.close()

    responses = asyncio.run(_serve(handler, lambda url: _fresh_many(url, 3, 4)))  # type: ignore[arg-type]
    assert [r.content for r in responses] == [b"n0", b"n1", b"n2"]  # type: ignore[union-attr]
    assert len(connections) == 2  # requests 0 and 1 shared one; 2 needed a new one


def test_chunked_and_close_delimited_answers_are_read_whole() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    ]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()

    responses = asyncio.run(_serve(handler, lambda url: _fresh_many(url, 2, 1)))
    assert [r.content for r in responses] == [b"abcde", b"until the end"]  # type: ignore[union-attr]


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(_answer(b"ok"))  # says keep-alive, then closes anyway
        await writer.drain()
        writer.close()

    async def call(url: str) -> list[httpx.Response]:
        transport = HttpTransport(max_connections=1)
        try:
            first = await _many(url, 1, transport=transport)
            await asyncio.sleep(0.05)  # the close reaches the client while the connection idles
            return first + await _many(url, 1, transport=transport)
        finally:
            await transport.aclose()

    responses = asyncio.run(_serve(handler, call))
    assert [r.status_code for r in responses] == [200, 200]  # type: ignore[union-attr]


def test_requests_beyond_the_pool_wait_for_a_free_connection_or_time_out() -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            await asyncio.sleep(0.2)
            writer.write(_answer(body))
            await writer.drain()
        writer.close()

    async def send(transport: HttpTransport, url: str, i: int, pool: float) -> bytes:
        return (await transport.handle_async_request(_request(url, b"%d" % i, pool=pool))).content

    async def call(url: str) -> object:
        transport = HttpTransport(max_connections=2)
        try:
            waited = await asyncio.gather(*(send(transport, url, i, 5.0) for i in range(6)))
            late = await asyncio.gather(
                *(send(transport, url, i, 0.01) for i in range(3)), return_exceptions=True
            )
            return waited, late
        finally:
            await transport.aclose()

    waited, late = asyncio.run(_serve(handler, call))  # type: ignore[misc]
    assert sorted(waited) == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert len(connections) == 2
    assert [type(x) for x in late].count(httpx.PoolTimeout) == 1  # two got a connection


def test_a_malformed_answer_is_remote_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 abc nonsense\r\n\r\n")
        await writer.drain()
        await reader.read()

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(_serve(handler, _send))


def test_a_reset_connection_is_read_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST instead of FIN

    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        asyncio.run(_serve(handler, _send))


# --- HTTPS ---------------------------------------------------------------------------------


def _tls_server(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def _serve_tls(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext | None) -> object:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            body = await _read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        writer.write(_answer(b"secret " + body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=server_ssl)
    port = server.sockets[0].getsockname()[1]
    transport = HttpTransport(max_connections=1, ssl_context=client_ssl)
    try:
        return (await _many(f"https://127.0.0.1:{port}/v1/me", 1, transport=transport))[0]
    finally:
        await transport.aclose()
        server.close()
        await server.wait_closed()


def test_https_verifies_the_server_certificate() -> None:
    ca = trustme.CA()
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    response = asyncio.run(_serve_tls(_tls_server(ca), trusting))
    assert getattr(response, "content", None) == b"secret 0"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_serve_tls(_tls_server(ca), None))  # httpx's default trust: certifi's CAs


def test_a_streamed_request_body_goes_as_one_chunk() -> None:
    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(_answer(b"ok"))
        await writer.drain()
        writer.close()

    async def parts() -> AsyncIterator[bytes]:
        yield b'{"a":'
        yield b"1}"

    async def call(url: str) -> httpx.Response:
        transport = HttpTransport(max_connections=1)
        try:
            request = httpx.Request("POST", url, content=parts())
            return await transport.handle_async_request(request)
        finally:
            await transport.aclose()

    response = asyncio.run(_serve(handler, call))
    assert getattr(response, "content", None) == b"ok"
    head, _, body = got[0].partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b'7\r\n{"a":1}\r\n0\r\n\r\n'


# --- found in review: each of these once gave a wrong answer --------------------------------


def test_a_reused_connection_closed_without_an_answer_never_replays_the_last_one() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await _read_request(reader)
        seen.append(body)
        if body == b"0":  # a 204 has no body and no Content-Length: ended by its headers
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
            with contextlib.suppress(asyncio.IncompleteReadError):
                await _read_request(reader)  # request 1 arrives here...
        else:
            writer.write(_answer(b"own " + body))
            await writer.drain()
        writer.close()  # ...and is dropped unanswered: it must go again, not get the 204

    responses = asyncio.run(_serve(handler, lambda url: _fresh_many(url, 2, 1)))
    assert [(r.status_code, r.content) for r in responses] == [(204, b""), (200, b"own 1")]  # type: ignore[union-attr]
    assert seen == [b"0", b"1"]  # once on the closed connection (not read), once anew


def test_a_connection_dropped_unanswered_twice_fails_instead_of_trying_every_idle_one() -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            received.append(body)
            if body == b"drop":
                break
            writer.write(_answer(body))
            await writer.drain()
        writer.close()

    async def send(transport: HttpTransport, url: str, body: bytes) -> httpx.Response:
        return await transport.handle_async_request(_request(url, body))

    async def call(url: str) -> object:
        transport = HttpTransport(max_connections=4)
        try:
            await asyncio.gather(*(send(transport, url, b"warm") for _ in range(4)))
            return await send(transport, url, b"drop")
        except httpx.RemoteProtocolError as exc:
            return exc
        finally:
            await transport.aclose()

    outcome = asyncio.run(_serve(handler, call))
    assert isinstance(outcome, httpx.RemoteProtocolError)
    assert received.count(b"drop") == 2  # the reused connection, then one new one


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (  # an interim answer, then the final one
            b"HTTP/1.1 100 Continue\r\n\r\n" + _answer(b"final"),
            (200, b"final"),
        ),
        (  # a chunked answer cut short, its coding spelled in capitals
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nabc",
            httpx.RemoteProtocolError,
        ),
        (  # a body that says gzip and is not
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
            httpx.RemoteProtocolError,
        ),
    ],
    ids=["100-continue", "chunked-capitals-truncated", "bad-gzip"],
)
def test_odd_answers(answer: bytes, expected: object) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    if isinstance(expected, tuple):
        response = asyncio.run(_serve(handler, _send))
        assert (getattr(response, "status_code", None), getattr(response, "content", None)) == (
            expected
        )
    else:
        with pytest.raises(expected):  # type: ignore[call-overload]
            asyncio.run(_serve(handler, _send))


def test_the_answer_to_a_head_ends_with_its_headers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")  # and no body
        await writer.drain()
        await reader.read()

    async def call(url: str) -> httpx.Response:
        transport = HttpTransport(max_connections=1)
        try:
            return await transport.handle_async_request(_request(url, method="HEAD"))
        finally:
            await transport.aclose()

    response = asyncio.run(_serve(handler, call))
    assert getattr(response, "status_code", None) == 200
    assert getattr(response, "content", None) == b""
