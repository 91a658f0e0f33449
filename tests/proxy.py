"""A small forward HTTP proxy on loopback, for tests that must see traffic go through a proxy.

Tests of the importer's proxy support (``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY``, and
``NO_PROXY`` bypassing them) need a real proxy that records what it was asked to do. This one
speaks the two forms a client uses:

* absolute-form requests (``GET http://127.0.0.1:8000/v1/me HTTP/1.1``) for ``http://`` URLs:
  the request is forwarded in origin-form with hop-by-hop headers dropped, and the answer is
  relayed back; bodies may be sized or chunked either way, and the client connection is kept
  alive between requests;
* ``CONNECT host:port`` tunnels for ``https://`` URLs: after ``200 Connection established``
  the proxy copies bytes both ways and never sees inside the TLS.

It only ever connects to loopback addresses (127.0.0.0/8, ``::1``, ``localhost``); any other
target is answered ``403`` before any connection attempt, so a test cannot leak traffic off
this machine. HTTP parsing on both sides is done by ``h11``. Every connection has an idle
timeout and :meth:`ForwardProxy.stop` closes everything within a bounded time, so a broken
client or upstream cannot hang a test run.

Typical use::

    with ForwardProxy() as proxy:
        with httpx.Client(proxy=proxy.url) as client:
            client.get(f"{box.base_url}/me", headers=...)
        assert proxy.seen[0].method == "GET"
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http
import ipaddress
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import h11

__all__ = ["ForwardProxy", "Seen"]

_CHUNK = 64 * 1024

# Headers that describe one hop, not the message (RFC 9110 section 7.6.1), plus the framing
# header, which h11 sets again for the next hop, and Host and Expect, which the proxy handles.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


@dataclass(frozen=True, slots=True)
class Seen:
    """One request the proxy handled (whether forwarded, tunnelled or refused).

    ``target`` is ``host:port`` (port always explicit, IPv6 hosts in brackets); ``path`` is the
    origin-form path and query that was (or would have been) forwarded, ``""`` for CONNECT.
    """

    method: str
    target: str
    path: str


class _Refused(Exception):
    """The request gets a proxy-made error answer instead of being forwarded."""

    def __init__(self, status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.headers = list(headers)


class _Abort(Exception):
    """The client connection must be dropped without an answer (the answer already began)."""


def loopback_addresses(host: str) -> tuple[str, ...]:
    """The loopback addresses to dial for ``host``, or ``()`` if it is not loopback.

    ``localhost`` maps to fixed addresses instead of a name lookup, so no resolver setting can
    send it elsewhere; other names, and numeric shorthands such as ``127.1``, are refused.
    """
    name = host.lower()
    if name in ("localhost", "localhost."):
        return ("127.0.0.1", "::1")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return ()
    return (str(address),) if address.is_loopback else ()


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _end_to_end(
    message: h11.Request | h11.Response | h11.InformationalResponse,
) -> list[tuple[bytes, bytes]]:
    """The message's headers without hop-by-hop ones, nor those its Connection header names."""
    named = {
        token.strip().lower()
        for name, value in message.headers
        if name == b"connection"
        for token in value.split(b",")
    }
    return [
        (raw, value)
        for raw, value in message.headers.raw_items()
        if raw.lower() not in _HOP_BY_HOP and raw.lower() not in named
    ]


def _parse_authority(authority: str) -> tuple[str, int] | None:
    """``(host, port)`` of a CONNECT target ``host:port``, or None if it is not one.

    httpcore (httpx's transport) sends IPv6 targets without brackets (``::1:443``), so an
    unbracketed IPv6 address followed by ``:port`` is taken as well.
    """
    host_part, _, port_part = authority.rpartition(":")
    if ":" in host_part and not host_part.startswith("[") and port_part.isdigit():
        try:
            ipaddress.IPv6Address(host_part)
        except ValueError:
            return None
        authority = f"[{host_part}]:{port_part}"
    try:
        parts = urlsplit("//" + authority)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or port is None or "@" in parts.netloc or parts.path or "?" in authority:
        return None
    return host, port


def _parse_absolute(target: str, host_header: str = "") -> tuple[str, int, str, str] | None:
    """``(host, port, host header, origin-form path)`` of an ``http://`` absolute-form target.

    None for anything else: origin-form (a request not meant for a proxy) or ``https://``,
    which a client must tunnel with CONNECT instead of sending in the clear.

    httpcore writes IPv6 hosts here without brackets (``http://::1:8000/x``), which is
    ambiguous on its own; the request's (bracketed) Host header, when it names the same
    host and port, tells where the address ends.
    """
    scheme, sep, rest = target.partition("://")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if sep and netloc.count(":") > 1 and "[" not in netloc and "@" not in netloc:
        try:
            named = urlsplit("//" + host_header)
            ipv6 = ipaddress.IPv6Address(named.hostname or "")
            port_suffix = "" if named.port is None else f":{named.port}"
        except ValueError:
            return None
        if netloc.lower() != f"{ipv6}{port_suffix}" and netloc.lower() != (
            f"{named.hostname}{port_suffix}"
        ):
            return None
        target = f"{scheme}://[{named.hostname}]{port_suffix}{rest[len(netloc) :]}"
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        return None
    if parts.scheme.lower() != "http" or not host:
        return None
    rest = target[len(parts.scheme) + 3 + len(parts.netloc) :].partition("#")[0]
    path = rest if rest.startswith("/") else "/" + rest
    return host, port, parts.netloc.rpartition("@")[2], path


class ForwardProxy:
    """A forward HTTP proxy on ``127.0.0.1:<ephemeral>``, run on its own loop in a thread.

    ``require_auth=("user", "pass")`` demands ``Proxy-Authorization: Basic`` with those
    credentials (``407`` otherwise). ``idle_timeout`` closes a client connection or tunnel after
    that many seconds without traffic; ``connect_timeout`` bounds each upstream dial.

    Attributes, readable from any thread: :attr:`url`, :attr:`port`, :attr:`seen` (requests
    handled, in order), :attr:`dialed` (upstream addresses the proxy tried to connect to) and
    :attr:`connections` (client connections accepted, to tell keep-alive from reconnects).
    """

    def __init__(
        self,
        *,
        require_auth: tuple[str, str] | None = None,
        idle_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._auth = require_auth
        self._idle = idle_timeout
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._dialed: list[tuple[str, int]] = []
        self._connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    # --- lifecycle (caller's thread) ---------------------------------------------------------

    def start(self) -> ForwardProxy:
        """Listen, and serve from a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("ForwardProxy already started")
        self._closing = False
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._on_client, "127.0.0.1", 0)
                )
                self._port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                leftovers = asyncio.all_tasks(loop)
                for task in leftovers:
                    task.cancel()
                if leftovers:
                    loop.run_until_complete(asyncio.wait(leftovers, timeout=1.0))
                loop.close()

        self._thread = threading.Thread(target=run, name="forward-proxy", daemon=True)
        self._thread.start()
        ready.wait(10.0)
        if failure:
            self._thread.join(1.0)
            self._thread = None
            raise failure[0]
        if self._port is None:
            raise RuntimeError("ForwardProxy did not start in time")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and close every connection and tunnel; waits at most ~``timeout`` s."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive() and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout / 2), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- what tests read ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on (only valid once started)."""
        if self._port is None:
            raise RuntimeError("ForwardProxy not started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``httpx.Client(proxy=...)`` or ``HTTP_PROXY``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[Seen]:
        """A copy of every request handled so far, in arrival order."""
        with self._lock:
            return list(self._seen)

    @property
    def dialed(self) -> list[tuple[str, int]]:
        """A copy of every ``(address, port)`` the proxy tried to connect to, in order."""
        with self._lock:
            return list(self._dialed)

    @property
    def connections(self) -> int:
        """How many client connections the proxy accepted."""
        with self._lock:
            return self._connections

    def clear(self) -> None:
        """Forget what was seen and dialed (the connection count too)."""
        with self._lock:
            self._seen.clear()
            self._dialed.clear()
            self._connections = 0

    # --- the proxy's own loop ----------------------------------------------------------------

    def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close gracefully while serving; abort (no flushing to a stuck peer) at shutdown."""
        if self._closing:
            writer.transport.abort()
        else:
            writer.close()
        self._writers.discard(writer)

    async def _shutdown(self, timeout: float) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        for writer in list(self._writers):  # anything a cancelled task failed to close
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        with self._lock:
            self._connections += 1
        try:
            await self._serve(reader, writer)
        except (asyncio.CancelledError, _Abort, TimeoutError, OSError, h11.ProtocolError):
            pass
        finally:
            self._close(writer)
            self._tasks.discard(task)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    async def _receive(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> h11.Event | type[h11.PAUSED]:
        """The next h11 event, reading more bytes (within the idle timeout) as needed."""
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            conn.receive_data(await asyncio.wait_for(reader.read(_CHUNK), self._idle))

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, event: h11.Event
    ) -> None:
        data = conn.send(event)
        if data:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), self._idle)

    async def _answer(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """A proxy-made answer with a short text body; closes unless the request was read."""
        body = f"proxy: {status} {_reason(status).decode()}\n".encode()
        fields = [
            *headers,
            (b"Content-Type", b"text/plain"),
            (b"Content-Length", str(len(body)).encode()),
        ]
        if conn.their_state is h11.SEND_BODY or conn.their_state is h11.ERROR:
            fields.append((b"Connection", b"close"))
        await self._send(
            conn, writer, h11.Response(status_code=status, reason=_reason(status), headers=fields)
        )
        await self._send(conn, writer, h11.Data(data=body))
        await self._send(conn, writer, h11.EndOfMessage())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one client connection until it closes or stops being reusable."""
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                event = await self._receive(conn, reader)
            except h11.RemoteProtocolError as err:
                if conn.our_state is h11.SEND_RESPONSE or conn.our_state is h11.IDLE:
                    await self._answer(conn, writer, err.error_status_hint)
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed, or nothing more to do
            try:
                if event.method == b"CONNECT":
                    await self._connect(conn, event, reader, writer)
                    if conn.our_state is h11.SWITCHED_PROTOCOL:
                        return
                else:
                    await self._forward(conn, event, reader, writer)
            except _Refused as refusal:
                if conn.our_state is not h11.SEND_RESPONSE:
                    raise _Abort from refusal
                await self._answer(conn, writer, refusal.status, refusal.headers)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    def _check_auth(self, request: h11.Request) -> None:
        """Refuse with 407 and a Basic challenge unless the request carries the credentials."""
        if self._auth is None:
            return
        challenge = [(b"Proxy-Authenticate", b'Basic realm="test-proxy"')]
        expected = f"{self._auth[0]}:{self._auth[1]}".encode()
        for name, value in request.headers:
            if name != b"proxy-authorization":
                continue
            scheme, _, encoded = value.partition(b" ")
            if scheme.lower() != b"basic":
                continue
            try:
                given = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                continue
            if secrets.compare_digest(given, expected):
                return
        raise _Refused(407, challenge)

    async def _drain_request(self, conn: h11.Connection, reader: asyncio.StreamReader) -> None:
        """Read (and drop) the rest of a refused request's body, so keep-alive can go on."""
        while conn.their_state is h11.SEND_BODY:
            event = await self._receive(conn, reader)
            if isinstance(event, h11.ConnectionClosed):
                raise _Abort

    async def _dial(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to a loopback ``host`` (refused with 403 before any attempt otherwise)."""
        addresses = loopback_addresses(host)
        if not addresses:
            raise _Refused(403)
        for address in addresses:
            with self._lock:
                self._dialed.append((address, port))
            try:
                streams = await asyncio.wait_for(
                    asyncio.open_connection(address, port), self._connect_timeout
                )
            except (OSError, TimeoutError):
                continue
            self._writers.add(streams[1])  # so that stop() can abort it
            return streams
        raise _Refused(502)

    # --- CONNECT tunnels ---------------------------------------------------------------------

    async def _connect(
        self,
        conn: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        authority = request.target.decode("ascii")
        parsed = _parse_authority(authority)
        self._record(Seen("CONNECT", authority if parsed is None else _authority(*parsed), ""))
        await self._drain_request(conn, reader)  # normally empty: just its EndOfMessage
        if parsed is None:
            raise _Refused(400)
        host, port = parsed
        self._check_auth(request)
        up_reader, up_writer = await self._dial(host, port)
        try:
            established = h11.Response(
                status_code=200, reason=b"Connection established", headers=[]
            )
            await self._send(conn, writer, established)
            early, _ = conn.trailing_data  # e.g. a TLS ClientHello sent right behind
            if early:
                up_writer.write(early)
            await self._relay(reader, writer, up_reader, up_writer)
        finally:
            self._close(up_writer)

    async def _relay(
        self,
        c_reader: asyncio.StreamReader,
        c_writer: asyncio.StreamWriter,
        u_reader: asyncio.StreamReader,
        u_writer: asyncio.StreamWriter,
    ) -> None:
        """Copy bytes both ways; an EOF is passed on as a half-close; idle means no bytes
        in *either* direction for ``idle_timeout``, so a one-way download is not cut."""
        loop = asyncio.get_running_loop()
        last = [loop.time()]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while (remaining := self._idle - (loop.time() - last[0])) > 0:
                    try:
                        data = await asyncio.wait_for(src.read(_CHUNK), remaining)
                    except TimeoutError:
                        continue
                    if not data:
                        if dst.can_write_eof():
                            dst.write_eof()
                        return
                    last[0] = loop.time()
                    dst.write(data)
                    await asyncio.wait_for(dst.drain(), self._idle)
                dst.transport.abort()  # idle: end the other direction as well
            except (OSError, TimeoutError):
                dst.transport.abort()  # the other pump then sees EOF or an error and ends too

        await asyncio.gather(pump(c_reader, u_writer), pump(u_reader, c_writer))

    # --- absolute-form requests --------------------------------------------------------------

    async def _forward(
        self,
        conn: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        method = request.method.decode("ascii")
        raw = request.target.decode("ascii")
        named = next((value for name, value in request.headers if name == b"host"), b"")
        parsed = _parse_absolute(raw, named.decode("latin-1"))
        if parsed is None:
            self._record(Seen(method, raw, ""))
            await self._drain_request(conn, reader)
            raise _Refused(400)
        host, port, host_header, path = parsed
        self._record(Seen(method, _authority(host, port), path))
        try:
            self._check_auth(request)
            if not loopback_addresses(host):
                raise _Refused(403)  # before the body is read, let alone anything dialled
            if conn.they_are_waiting_for_100_continue:
                await self._send(
                    conn,
                    writer,
                    h11.InformationalResponse(status_code=100, reason=b"Continue", headers=[]),
                )
            up_reader, up_writer = await self._dial(host, port)
        except _Refused:
            if not conn.they_are_waiting_for_100_continue:  # else: answer now, then close
                await self._drain_request(conn, reader)  # so the connection stays usable
            raise

        headers = [(b"Host", host_header.encode("ascii"))]
        headers += [
            (name, value)
            for name, value in _end_to_end(request)
            if name.lower() not in (b"host", b"expect")
        ]
        if any(name == b"transfer-encoding" for name, _ in request.headers):
            headers.append((b"Transfer-Encoding", b"chunked"))
        upstream = h11.Connection(h11.CLIENT)
        try:
            await self._pass_request(conn, reader, upstream, up_writer, request, path, headers)
            await self._pass_response(conn, writer, upstream, up_reader)
        finally:
            self._close(up_writer)  # one upstream connection per request keeps this simple

    async def _pass_request(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        upstream: h11.Connection,
        up_writer: asyncio.StreamWriter,
        request: h11.Request,
        path: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Stream the request head and body to the upstream, re-framed by h11."""
        try:
            await self._send(
                upstream,
                up_writer,
                h11.Request(method=request.method, target=path.encode("ascii"), headers=headers),
            )
            while True:
                event = await self._receive(conn, reader)
                if isinstance(event, h11.Data):
                    await self._send(upstream, up_writer, h11.Data(data=event.data))
                elif isinstance(event, h11.EndOfMessage):
                    await self._send(upstream, up_writer, h11.EndOfMessage())  # trailers dropped
                    return
                else:
                    raise _Abort  # the client went away mid-request
        except (OSError, TimeoutError, h11.LocalProtocolError) as err:
            raise _Refused(502) from err  # upstream gone; _answer closes (body unread)

    async def _pass_response(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        upstream: h11.Connection,
        up_reader: asyncio.StreamReader,
    ) -> None:
        """Relay the upstream's answer; once it has started, a failure drops the client."""
        try:
            while True:
                event = await self._receive(upstream, up_reader)
                if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                    await self._send(
                        conn,
                        writer,
                        h11.InformationalResponse(
                            status_code=event.status_code,
                            reason=event.reason,
                            headers=_end_to_end(event),
                        ),
                    )
                    continue
                if not isinstance(event, h11.Response):
                    raise _Refused(502)
                break
        except (OSError, TimeoutError, h11.RemoteProtocolError) as err:
            raise _Refused(502) from err
        await self._send(
            conn,
            writer,
            h11.Response(
                status_code=event.status_code,
                reason=event.reason,
                headers=_end_to_end(event),
            ),
        )
        try:
            while True:
                part = await self._receive(upstream, up_reader)
                if isinstance(part, h11.Data):
                    await self._send(conn, writer, h11.Data(data=part.data))
                elif isinstance(part, h11.EndOfMessage):
                    await self._send(conn, writer, h11.EndOfMessage())  # trailers dropped
                    return
                else:
                    raise _Abort
        except (OSError, TimeoutError, h11.RemoteProtocolError) as err:
            raise _Abort from err
