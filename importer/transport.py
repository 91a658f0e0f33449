"""httpx's transport seam over a lean HTTP/1.1 keep-alive pool: what ``KirimClient`` sends through.

Each connection is an ``asyncio.Protocol`` that writes a request in one ``write`` and parses
the answer with ``httptools`` (llhttp, uvicorn's parser). At most one request is in flight
per connection; idle connections are kept per origin and reused. Per request it costs a
tenth of httpx's default httpcore pool, and a full run goes from 0.57x to about 0.8x of a bare
aiohttp loop's rate compared with the aiohttp ``ClientSession`` this transport sat on before
(README, Performance). Kirim's answers are small JSON bodies, so each is read whole and
handed to ``httpx.Response(content=...)`` (httpx still decodes any ``Content-Encoding``).
HTTPS uses ``httpx.create_ssl_context()``, so certificates are verified as httpx would.
Timeouts come from the request's ``timeout`` extension; errors are httpx's own::

    httpx.TransportError
     ├── httpx.TimeoutException
     │    ├── PoolTimeout      every connection stayed busy for the "pool" timeout
     │    ├── ConnectTimeout   no connection within the "connect" timeout
     │    └── ReadTimeout      no whole answer within the "read" timeout (the request MAY
     │                         have landed)
     ├── httpx.NetworkError
     │    ├── ConnectError     refused, unreachable, DNS, TLS handshake: nothing was sent
     │    └── ReadError        the connection was reset while the answer was due
     ├── httpx.ProtocolError
     │    └── RemoteProtocolError  the server closed the connection early, or sent bad HTTP
     │                             or a body its Content-Encoding does not decode
     └── httpx.UnsupportedProtocol  a URL neither http:// nor https://

A reused keep-alive connection that closes before any byte of its answer (the server timed
it out as the request went) is the one failure retried here: once, on a new connection. The
request may have been read, so this relies on what every Kirim write carries, an idempotency
key (a PATCH sets fields, so a repeat changes nothing). Every other failure goes up, and
``Sender`` retries it with the same key. Interim ``1xx`` answers are skipped; the answer to a
``HEAD`` ends with its headers.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

import httptools
import httpx

_Answer = tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]  # status, reason, ...


class _Unanswered(httpx.RemoteProtocolError):
    """The connection closed before a single byte of the answer arrived."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[_Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._framed = False  # the answer says where it ends (Content-Length or chunked)
        self._headers_done = False
        self._answered = False  # a byte of the current answer arrived
        self._head = False  # the current request is a HEAD: its answer has no body
        self.closed = False

    # --- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._answered = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP answer: {exc!r}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if exc is None and self._headers_done and not self._framed:
            self.on_message_complete()  # an answer delimited by the connection's close
        elif exc is not None:
            self._fail(httpx.ReadError(str(exc) or type(exc).__name__))
        elif not self._answered:
            self._fail(_Unanswered("server disconnected without sending an answer"))
        else:
            self._fail(httpx.RemoteProtocolError("server disconnected in the middle of an answer"))

    # --- httptools callbacks ------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._waiter is None:  # an answer nobody asked for: this connection is spent
            self.close()
        self._reset()

    def _reset(self) -> None:
        self._reason, self._headers, self._body = b"", [], []
        self._framed = self._headers_done = False

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if name.lower() == b"content-length" or _chunked(name, value):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._head and not self._interim():  # no body follows, whatever the headers say
            self._complete(keep=False)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._waiter is not None and self._interim():
            self._reset()  # 100 Continue, 103 Early Hints: the final answer follows
            return
        self._complete(keep=not self.closed and self._parser.should_keep_alive())

    def _interim(self) -> bool:
        return 100 <= self._parser.get_status_code() < 200

    def _complete(self, *, keep: bool) -> None:
        waiter, self._waiter = self._waiter, None
        self._cancel_timer()
        if waiter is None or waiter.done():
            self.close()  # an answer nobody asked for: this connection cannot be trusted
            return
        answer = (self._parser.get_status_code(), self._reason, self._headers,
                  b"".join(self._body), keep)  # fmt: skip
        waiter.set_result(answer)

    # --- used by the pool ---------------------------------------------------------------
    def send(self, data: bytes, *, head: bool, read_s: float | None) -> asyncio.Future[_Answer]:
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._answered, self._head = False, head
        self._reset()  # nothing of this answer arrived yet
        if self.closed:  # lost before the request went out: it may go on another connection
            self._fail(_Unanswered("the connection closed before the request was sent"))
            return self._waiter
        if read_s is not None:
            self._timer = loop.call_later(read_s, self._timed_out)
        self._transport.write(data)
        return self._waiter

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(httpx.ReadTimeout("no answer within the read timeout"))
        self.close()  # a late answer must not be read as the next request's

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: Exception) -> None:
        self._cancel_timer()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


def _chunked(name: bytes, value: bytes) -> bool:
    """Whether a header says the body is chunked (names and codings are case-insensitive)."""
    return name.lower() == b"transfer-encoding" and b"chunked" in value.lower()


def _encode(request: httpx.Request, body: bytes) -> bytes:
    """The request as bytes on the wire. httpx already set Host and Content-Length."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    chunked = False
    for name, value in request.headers.raw:
        lines.append(b"%s: %s\r\n" % (name, value))
        chunked = chunked or _chunked(name, value)
    if chunked:  # a streamed body, read whole above: sent as one chunk
        body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    lines += (b"\r\n", body)
    return b"".join(lines)


class HttpTransport(httpx.AsyncBaseTransport):
    """Sends ``httpx.Request`` objects over at most ``max_connections`` keep-alive connections."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[bytes, bytes, int], list[_Connection]] = {}
        self._ssl = ssl_context
        self._open: set[_Connection] = set()
        self._closed = False

    async def _connect(self, request: httpx.Request, timeout: dict[str, float]) -> _Connection:
        scheme, host, port = request.url.raw_scheme, request.url.raw_host, request.url.port
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        if self._closed:
            raise httpx.ConnectError("the transport is closed", request=request)
        tls = None
        if scheme == b"https":
            tls = self._ssl = self._ssl or httpx.create_ssl_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout.get("connect")):
                _, conn = await loop.create_connection(
                    _Connection, host.decode("ascii"), port or (443 if tls else 80), ssl=tls
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("no connection within the timeout", request=request) from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        if self._closed:  # closed while this connection was being made
            conn.close()
            raise httpx.ConnectError("the transport is closed", request=request)
        self._open.add(conn)
        return conn

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout: dict[str, float] = request.extensions.get("timeout", {})
        if self._slots.locked():
            try:
                async with asyncio.timeout(timeout.get("pool")):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise httpx.PoolTimeout("no free connection", request=request) from exc
        else:
            await self._slots.acquire()
        try:
            return await self._exchange(request, timeout)
        finally:
            self._slots.release()

    async def _exchange(self, request: httpx.Request, timeout: dict[str, float]) -> httpx.Response:
        origin = (request.url.raw_scheme, request.url.raw_host, request.url.port or 0)
        idle = self._idle.setdefault(origin, [])
        data = _encode(request, await request.aread())
        while idle:
            conn = idle.pop()
            if not conn.closed:
                try:
                    return await self._roundtrip(conn, request, data, timeout, idle)
                except _Unanswered:  # closed by the server as we reused it (the keep-alive
                    break  # race): once more on a new connection; the key makes it harmless
            self._open.discard(conn)
        conn = await self._connect(request, timeout)
        return await self._roundtrip(conn, request, data, timeout, idle)

    async def _roundtrip(
        self,
        conn: _Connection,
        request: httpx.Request,
        data: bytes,
        timeout: dict[str, float],
        idle: list[_Connection],
    ) -> httpx.Response:
        head = request.method == "HEAD"
        try:
            answer = await conn.send(data, head=head, read_s=timeout.get("read"))
        except httpx.TransportError as exc:
            self._open.discard(conn)
            exc.request = request
            raise
        except BaseException:  # cancelled: the answer may still come; the connection is spent
            conn.close()
            self._open.discard(conn)
            raise
        status, reason, headers, body, keep = answer
        if keep and not self._closed:
            idle.append(conn)
        else:
            conn.close()
            self._open.discard(conn)
        extensions = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason
        try:  # httpx decodes any Content-Encoding right here
            return httpx.Response(
                status, headers=headers, content=body, request=request, extensions=extensions
            )
        except httpx.DecodingError as exc:
            raise httpx.RemoteProtocolError(f"undecodable answer: {exc}", request=request) from exc

    async def aclose(self) -> None:
        self._closed = True
        for conn in self._open:
            conn.close()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost
