"""The aiohttp transport against raw loopback servers: answers, and each network fault named."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from importer.client import KirimClient
from importer.transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler, call: Callable[[str], Awaitable[httpx.Response]]) -> object:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await call(f"http://127.0.0.1:{port}/v1/me")
    finally:
        server.close()
        await server.wait_closed()


async def _send(url: str, *, read_s: float = 5.0) -> httpx.Response:
    transport = AiohttpTransport(max_connections=4)
    timeout = {"connect": 5.0, "read": read_s, "write": 5.0, "pool": 5.0}
    try:
        request = httpx.Request("POST", url, content=b'{"a":1}', extensions={"timeout": timeout})
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
