"""httpx's transport seam over an aiohttp connection pool: what ``KirimClient`` sends through.

httpx's own HTTP/1.1 pool measured several times slower per request than aiohttp's on this
workload, and ``httpx_aiohttp.AiohttpTransport`` (an adapter we measured first) streams each
small JSON body through three layers of async iterators and maps a refused connection to
``ConnectTimeout``. This transport reads every body whole (Kirim's answers are a few hundred
bytes), hands it to ``httpx.Response(content=...)`` (httpx still decodes any
``Content-Encoding``), and raises httpx's own exceptions::

    httpx.TransportError
     ├── httpx.TimeoutException
     │    ├── ConnectTimeout   no connection within the "connect" or "pool" timeout
     │    └── ReadTimeout      no answer within the "read" timeout (the request MAY have landed)
     └── httpx.NetworkError
          ├── ConnectError     refused, unreachable, DNS: the request was never sent
          ├── ReadError        the connection broke while the answer was read
          └── RemoteProtocolError  the server closed the connection or sent malformed HTTP

Timeouts come from the request's ``timeout`` extension, as with any httpx transport.
"""

from __future__ import annotations

import aiohttp
import httpx

_HTTP11 = {"http_version": b"HTTP/1.1"}


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends ``httpx.Request`` objects over one ``aiohttp.ClientSession`` (keep-alive)."""

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        return self._session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout", {})
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            connect, read, pool = key
            found = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)
            self._timeouts[key] = found
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            ) as answer:
                body = await answer.read()
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:  # disconnected, bad HTTP, any other network fault
            message = str(exc) or type(exc).__name__
            raise httpx.RemoteProtocolError(message, request=request) from exc
        extensions = dict(_HTTP11)
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode()
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            content=body,
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
