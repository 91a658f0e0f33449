"""Answers that are not API responses at all: what a client meets when something between it
and Kirim (a corporate proxy, a captive portal, a broken load balancer) answers instead.

All three are ``200`` so a client that trusts the status alone is caught, and none has any
effect: the request never reached the API, so nothing is created and no idempotency key is
claimed.

* ``html``: a block page with ``Content-Type: text/html`` and none of Kirim's headers.
* ``oversize``: ``{"data":{"padding":"xxx..."}}`` of exactly ``oversize_bytes``, streamed in
  chunks without ``Content-Length`` (chunked encoding), so neither side holds it in memory and
  the client can only notice by counting what it reads.
* ``endless``: the start of a JSON body, then a small chunk every ``ENDLESS_INTERVAL_S`` until
  the client goes away or the server shuts down; the body never ends (the connection is closed
  without the final chunk), and it trickles, so a per-read timeout never fires.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from importer.sandbox.faults import MIN_OVERSIZE_BYTES, FaultSettings, Misbehaviour

BLOCK_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Access Denied</title></head>
<body>
<h1>Web Page Blocked</h1>
<p>Access to the requested site has been blocked by your organization's security policy.</p>
<p>Category: Uncategorized Business APIs<br>Policy: Default-Deny-Unknown</p>
<p>If you believe this is an error, contact your network administrator.</p>
</body>
</html>
"""

_HEAD = b'{"data":{"padding":"'
_TAIL = b'"}}'
assert len(_HEAD) + len(_TAIL) <= MIN_OVERSIZE_BYTES

#: Chunk size of the oversize body.
OVERSIZE_CHUNK_BYTES = 64 * 1024
#: Pause between two chunks of an endless body, and the size of each.
ENDLESS_INTERVAL_S = 0.05
ENDLESS_CHUNK = b"x" * 256


def html() -> web.Response:
    """The block page."""
    return web.Response(
        status=200,
        body=BLOCK_PAGE,
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
    )


async def oversize(request: web.Request, headers: dict[str, str], size: int) -> web.StreamResponse:
    """Stream a JSON-looking body of exactly ``size`` bytes (stops early if the client leaves)."""
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    padding = size - len(_HEAD) - len(_TAIL)
    chunk = memoryview(b"x" * OVERSIZE_CHUNK_BYTES)
    try:
        await response.write(_HEAD)
        while padding > 0:
            n = min(padding, OVERSIZE_CHUNK_BYTES)
            await response.write(chunk[:n])
            padding -= n
        await response.write(_TAIL)
        await response.write_eof()
    except ConnectionError:
        pass  # the client stopped reading: what a careful client does
    return response


async def endless(
    request: web.Request, headers: dict[str, str], closing: asyncio.Event
) -> web.StreamResponse:
    """Trickle a body until the client disconnects or ``closing`` is set, then cut the
    connection without finishing the body."""
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    try:
        await response.write(_HEAD)
        while not closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), ENDLESS_INTERVAL_S)
            if closing.is_set():
                break
            await response.write(ENDLESS_CHUNK)
    except ConnectionError:
        pass
    if request.transport is not None:
        request.transport.close()
    return response


async def answer(
    kind: Misbehaviour,
    request: web.Request,
    headers: dict[str, str],
    faults: FaultSettings,
    closing: asyncio.Event,
) -> web.StreamResponse:
    """The answer of ``kind``; ``headers`` (Kirim's usual ones) go on the JSON-looking kinds."""
    if kind == "html":
        return html()
    if kind == "oversize":
        return await oversize(request, headers, faults.oversize_bytes)
    return await endless(request, headers, closing)
