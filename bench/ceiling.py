"""Throughput ceiling: a full ``run`` against an unlimited sandbox vs a bare aiohttp POST loop.

    .venv/bin/python bench/ceiling.py [--rows 20000] [--latencies 0,50] [--concurrency 128]
                                      [--setup-requests 5000] [--no-setups]

For each sandbox latency (own process, rate limits lifted) and each of four clients, on a
FRESH sandbox: ``run --on-existing create`` (one POST per row), the same through the Python
API (``importer.run``, ``bench/api_run.py``), ``run`` in the default ``skip`` mode (a GET
lookup, then the POST), and a bare aiohttp loop (same concurrency, keep-alive, the same
canonical bodies and idempotency keys). On two cores or more the sandbox runs on one core and
the client on another (``os.sched_setaffinity``), so each client's CPU per created row
(start-up, reading, validation, journal and report included) is compared with the bare
loop's in the same run. creates/s = created / elapsed
(summary.json's ``elapsed_s``: the whole command, reading and pre-flight included); the
ratio is to the bare loop of the same latency, measured in the same invocation.

Then the client-setup comparison behind "which httpx setup": N POSTs at concurrency 64 from
this process against one sandbox (0 ms) with httpx's default transport (httpcore), httpx over
``httpx_aiohttp.AiohttpTransport`` (the importer's), and bare aiohttp; req/s and the client's
own CPU seconds (getrusage of this process). HTTP/2 is skipped: ``h2`` is not installed, and
the sandbox (aiohttp) speaks HTTP/1.1 only, so it could not be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from common import Sandbox, bodies, encoded, importer_run, table, workdir
from gen import ensure

BENCH = Path(__file__).resolve().parent


async def bare_aiohttp(
    box: Sandbox, items: list[tuple[bytes, str]], concurrency: int
) -> tuple[float, Counter[int]]:
    """POST every body over ``concurrency`` keep-alive connections; (seconds, statuses)."""
    account = box.account()
    headers = {"Authorization": f"Bearer {box.token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    statuses: Counter[int] = Counter()
    it = iter(items)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        url = f"{box.base_url}/{account}/contacts"

        async def worker() -> None:
            for body, key in it:
                async with session.post(url, data=body, headers={"Idempotency-Key": key}) as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, statuses


async def httpx_loop(
    box: Sandbox, items: list[tuple[bytes, str]], concurrency: int, transport: str
) -> tuple[float, Counter[int]]:
    account = box.account()
    headers = {"Authorization": f"Bearer {box.token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    kwargs: dict[str, Any] = {"limits": limits}
    if transport == "httpx_aiohttp":
        from httpx_aiohttp import AiohttpTransport

        kwargs = {"transport": AiohttpTransport(limits=limits)}
    statuses: Counter[int] = Counter()
    it = iter(items)
    async with httpx.AsyncClient(
        base_url=box.base_url + "/", headers=headers, timeout=30, **kwargs
    ) as client:

        async def worker() -> None:
            for body, key in it:
                resp = await client.post(
                    f"{account}/contacts", content=body, headers={"Idempotency-Key": key}
                )
                statuses[resp.status_code] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, statuses


def cpu_self() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def measure(fn: Callable[[], Awaitable[tuple[float, Counter[int]]]]) -> tuple[float, float, Any]:
    c0 = cpu_self()
    secs, statuses = asyncio.run(fn())  # type: ignore[arg-type]
    return secs, cpu_self() - c0, statuses


# With two cores or more: the sandbox on one, the client (the bare loop, or the importer's
# process and its children) on another, so neither measures the other's load.
SERVER_CORE, CLIENT_CORE = 0, 1
PINNED = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def _pin(box: Sandbox) -> None:
    if PINNED and box.proc is not None:
        os.sched_setaffinity(box.proc.pid, {SERVER_CORE})
        os.sched_setaffinity(0, {CLIENT_CORE})  # this process; children inherit it


def ceiling(rows_n: int, latencies: list[int], concurrency: int, seed: int) -> None:
    file = ensure(rows_n, seed=seed, clean=True)
    all_bodies = list(bodies(rows_n, seed=seed))
    everything = os.sched_getaffinity(0) if PINNED else set()
    out: list[list[Any]] = []
    for lat in latencies:
        bare_rate = bare_cpu_row = float("nan")
        results: list[list[Any]] = []
        # bare loop first, so the ratio's denominator is known
        with Sandbox(unlimited=True, latency_ms=str(lat)) as box:
            _pin(box)
            items = encoded(box.account(), all_bodies)
            secs, cpu, statuses = measure(lambda: bare_aiohttp(box, items, concurrency))  # noqa: B023
        ok = statuses.get(201, 0)
        bare_rate, bare_cpu_row = ok / secs, 1e6 * cpu / max(ok, 1)
        results.append(["bare aiohttp", lat, concurrency, len(items), ok, secs, bare_rate, 1.0,
                        cpu, bare_cpu_row, 1.0, box.cpu_s, 0])  # fmt: skip
        runs = [("run create", "create", ("-m", "importer")),
                ("importer.run create", "create", (str(BENCH / "api_run.py"),)),
                ("run skip", "skip", ("-m", "importer"))]  # fmt: skip
        for name, mode, program in runs:
            print(f"[ceiling] latency {lat} ms, {name} ...", flush=True)
            with workdir("ceiling-") as tmp, Sandbox(unlimited=True, latency_ms=str(lat)) as box:
                _pin(box)
                res = importer_run(
                    box, file, workdir=Path(tmp), on_existing=mode, concurrency=concurrency,
                    program=program,
                )  # fmt: skip
            s = res.summary
            created = s.get("created", 0)
            rate = created / s.get("elapsed_s", float("nan"))
            cpu_row = 1e6 * res.child.cpu_s / max(created, 1)
            results.append([name, lat, concurrency, s.get("rows_total"), created,
                            s.get("elapsed_s"), rate, rate / bare_rate, res.child.cpu_s, cpu_row,
                            cpu_row / bare_cpu_row, box.cpu_s, s.get("requests_sent")])  # fmt: skip
        out += results
    if PINNED:
        os.sched_setaffinity(0, everything)
    table(
        ["client", "latency ms", "--concurrency", "rows", "created", "elapsed s", "creates/s",
         "x bare", "client CPU s", "CPU us/created", "CPU x bare", "server CPU s", "requests"],
        out,
        title="ceiling: unlimited sandbox" + (", server and client on a core each" if PINNED
                                              else "") + " (target: CPU per created row <= 3.2x "
        "bare aiohttp; importer.run within 2% of run)",
    )  # fmt: skip


def setups(n: int, seed: int, concurrency: int = 64) -> None:
    all_bodies = list(bodies(n * 5, seed=seed + 100))
    out: list[list[Any]] = []
    with Sandbox(unlimited=True, latency_ms="0") as box:
        items = encoded(box.account(), all_bodies)
        warm = items[:500]
        asyncio.run(bare_aiohttp(box, warm, concurrency))
        runs: list[tuple[str, Callable[[list[tuple[bytes, str]]], Any]]] = [
            ("httpx default (httpcore)", lambda it: httpx_loop(box, it, concurrency, "default")),
            ("httpx + httpx_aiohttp", lambda it: httpx_loop(box, it, concurrency, "httpx_aiohttp")),
            ("bare aiohttp", lambda it: bare_aiohttp(box, it, concurrency)),
        ]
        for i, (name, make) in enumerate(runs):
            chunk = items[500 + i * n : 500 + (i + 1) * n]
            print(f"[ceiling] setup {name}: {len(chunk)} POSTs ...", flush=True)
            secs, cpu, statuses = measure(lambda c=chunk, m=make: m(c))  # type: ignore[misc]
            ok = statuses.get(201, 0)
            out.append([name, concurrency, ok, secs, ok / secs, cpu, 1e6 * cpu / max(ok, 1)])
        out.append(["httpx http2=True", concurrency, None, None, None, None, None])
    table(
        ["client setup", "concurrency", "201s", "seconds", "req/s", "client CPU s",
         "client CPU us/req"],
        out,
        title="httpx setups, sandbox 0 ms, unlimited (HTTP/2 skipped: h2 not installed and the "
        "aiohttp sandbox is HTTP/1.1-only)",
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--latencies", default="0,50")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--setup-requests", type=int, default=5_000)
    parser.add_argument("--no-setups", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    lats = [int(x) for x in args.latencies.split(",")]
    ceiling(args.rows, lats, args.concurrency, args.seed)
    if not args.no_setups:
        setups(args.setup_requests, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
