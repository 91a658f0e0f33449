"""Running the sandbox: an async server object, a ``serve`` coroutine for the CLI, and the
thread-embedded ``Sandbox`` that tests and demos use as a context manager.

Each accepts an optional ``ssl.SSLContext`` (a server-side one, e.g. from ``trustme``): the
server then speaks only TLS and its base URL starts with ``https://``.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from importer.sandbox.app import make_app
from importer.sandbox.config import SandboxConfig
from importer.sandbox.faults import FaultSettings
from importer.sandbox.state import SandboxState

#: How long shutdown waits for in-flight handlers (e.g. a request sleeping its latency).
SHUTDOWN_TIMEOUT_S = 0.5


class SandboxServer:
    """The aiohttp runner for one ``SandboxState``; start and close on the same loop.

    With ``ssl_context`` the server speaks TLS only.
    """

    def __init__(self, state: SandboxState, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.state = state
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        """``http(s)://HOST:PORT/v1`` (valid once started)."""
        if self.port is None:
            raise RuntimeError("the sandbox server is not started")
        host = self.state.config.host
        shown = f"[{host}]" if ":" in host else host
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{shown}:{self.port}/v1"

    async def start(self) -> str:
        """Bind and listen; returns the base URL."""
        runner = web.AppRunner(
            make_app(self.state),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.state.config.host,
            self.state.config.port,
            backlog=1024,
            ssl_context=self.ssl_context,
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address: Any = runner.addresses[0]
        self.port = int(address[1])
        return self.base_url

    async def close(self) -> None:
        """Stop listening, finish in-flight requests (bounded) and close connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


async def serve(
    config: SandboxConfig,
    *,
    ready: Callable[[str, str], None] | None = None,
    stop: asyncio.Event | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> SandboxState:
    """Serve until ``stop`` is set (or the task is cancelled).

    ``ready(base_url, token)`` is called once the socket listens. Returns the state so a
    caller can inspect what happened. ``ssl_context`` serves HTTPS.
    """
    state = SandboxState(config)
    server = SandboxServer(state, ssl_context=ssl_context)
    base_url = await server.start()
    try:
        if ready is not None:
            ready(base_url, state.token)
        await (stop or asyncio.Event()).wait()
    finally:
        await server.close()
    return state


class Sandbox:
    """The sandbox in a background thread with its own event loop.

    ``start()`` returns once the server listens; ``stop()`` shuts it down, joins the thread
    and closes the loop. Usable as a context manager. Identity (token, organisation) exists
    from construction, the URL from ``start()``. ``ssl_context`` (server side) serves HTTPS.
    Faults can be changed while it runs with ``set_faults``.
    """

    def __init__(
        self, config: SandboxConfig | None = None, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.state = SandboxState(self.config)
        self._server = SandboxServer(self.state, ssl_context=ssl_context)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Start the server thread and block until it listens (re-raises bind errors)."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._server.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._server.close())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        thread = threading.Thread(target=run, name="kirim-sandbox", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        self._thread = self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------

    def set_faults(self, **changes: Any) -> FaultSettings:
        """Change fault settings by name (``FaultSettings`` fields) while the sandbox runs.

        Applied on the server's loop, so no request sees half a change; requests already in
        flight keep the settings they started with. Validated as a whole: unknown names or
        values out of range raise ``ValueError`` and change nothing. Returns the new settings.
        Before ``start()`` or after ``stop()`` the change is applied directly.
        """
        loop = self._loop
        if loop is None:
            return self.state.faults.update(**changes)

        async def apply() -> FaultSettings:
            return self.state.faults.update(**changes)

        return asyncio.run_coroutine_threadsafe(apply(), loop).result()

    @property
    def faults(self) -> FaultSettings:
        """The fault settings in force now."""
        return self.state.faults.current

    def injected(self) -> dict[str, int]:
        """Fault kind -> how many were injected (``importer.sandbox.faults.KINDS``)."""
        return self.state.faults.injected()

    # -- identity -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (``https://`` with an ``ssl_context``)."""
        return self._server.base_url

    @property
    def port(self) -> int:
        """The listening port."""
        if self._server.port is None:
            raise RuntimeError("the sandbox is not started")
        return self._server.port

    @property
    def token(self) -> str:
        """A working ``kdv_live_`` key (fresh per instance)."""
        return self.state.token

    @property
    def organization_id(self) -> str:
        """The organisation id (fresh per instance)."""
        return self.state.organization_id

    @property
    def account_id(self) -> str:
        """``phone_number_id`` of the first connected account."""
        return self.state.account_id

    # -- observation ----------------------------------------------------------------------

    def contacts(self) -> list[dict[str, Any]]:
        """Snapshot of every contact (deep copies, creation order, plus ``labels``)."""
        return self.state.store.contacts()

    def delete_contact(self, contact_id: str) -> bool:
        """Delete a contact behind the API's back (someone did, in Kirim's app)."""
        return self.state.store.delete_contact(contact_id)

    def creations_by_phone(self) -> dict[str, int]:
        """Phone -> number of create events that took effect."""
        return self.state.store.creations_by_phone()

    def status_counts(self) -> dict[int, int]:
        """HTTP status -> responses (0 = connection dropped on purpose)."""
        return self.state.store.status_counts()

    def request_count(self, method: str, route: str) -> int:
        """Requests for ``method`` on a route template, e.g. ``/v1/{phone_number_id}/contacts``.

        Unknown paths are counted under the route ``"<unmatched>"``; ``/_sandbox/state`` is
        not counted at all.
        """
        return self.state.store.route_counts().get((method.upper(), route), 0)

    @property
    def rate_limited(self) -> int:
        """Number of 429 answers."""
        return self.status_counts().get(429, 0)

    def stats(self) -> dict[str, Any]:
        """The JSON-able snapshot also served at ``GET /_sandbox/state``."""
        return self.state.stats()
