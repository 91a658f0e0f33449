"""A real HTTP receiver on loopback for the notification tests: an aiohttp server on its own
thread and event loop, recording every request it gets.

Routes: ``POST /hook/{token}`` answers 200 (a Slack-style webhook, its token in the path);
``POST /fail`` answers 500; ``POST /hang`` never answers (until the receiver stops).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _record(self, request: web.Request) -> Received:
        got = Received(request.path, dict(request.headers), await request.read())
        self.received.append(got)
        return got

    async def _hook(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="ok")

    async def _fail(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=500, text="no")

    async def _hang(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(3600)
        return web.Response(text="late")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{token:.+}", self._hook)
        app.router.add_post("/fail", self._fail)
        app.router.add_post("/hang", self._hang)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
