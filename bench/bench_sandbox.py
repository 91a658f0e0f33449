"""Throughput of the sandbox server for simple contact creates.

Starts ``python -m importer.sandbox`` in a separate process (so client and server do not share
a GIL), drives it with an aiohttp keep-alive session and prints a small table.

    .venv/bin/python bench/bench_sandbox.py [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def start_server() -> tuple[subprocess.Popen[str], str, str]:
    """Launch the sandbox and parse its announced base URL and key."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "importer.sandbox",
            "--write-per-minute",
            "10000000",
            "--read-per-minute",
            "10000000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    found: dict[str, str] = {}
    deadline = time.monotonic() + 20
    while len(found) < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        key, _, value = line.strip().partition("=")
        if key in ("KIRIM_BASE_URL", "KIRIM_API_KEY"):
            found[key] = value
    if len(found) < 2:
        proc.kill()
        raise SystemExit("sandbox did not start")
    return proc, found["KIRIM_BASE_URL"], found["KIRIM_API_KEY"]


async def drive(
    base_url: str, token: str, *, requests: int, concurrency: int, max_seconds: float
) -> tuple[int, float, Counter[int]]:
    """Fire ``requests`` creates over ``concurrency`` keep-alive connections."""
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async with session.get(f"{base_url}/accounts?status=connected") as resp:
            account = (await resp.json())["data"][0]["phone_number_id"]
        url = f"{base_url}/{account}/contacts"
        next_index = 0
        start = time.perf_counter()
        deadline = start + max_seconds

        async def worker() -> None:
            nonlocal next_index
            while next_index < requests and time.perf_counter() < deadline:
                i = next_index
                next_index += 1
                body = {"phone_number": f"+62812{i:08d}", "name": f"Bench {i}"}
                async with session.post(
                    url, json=body, headers={"Idempotency-Key": f"bench-{i}"}
                ) as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        async with session.get(base_url.removesuffix("/v1") + "/_sandbox/state") as resp:
            state = json.loads(await resp.read())
    done = sum(statuses.values())
    print(f"contacts stored by the server: {len(state['contacts'])}")
    return done, elapsed, statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=50.0)
    args = parser.parse_args()
    proc, base_url, token = start_server()
    try:
        done, elapsed, statuses = asyncio.run(
            drive(
                base_url,
                token,
                requests=args.requests,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
            )
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = usage.ru_utime + usage.ru_stime  # whole server process, start-up included
    print(f"{'requests':>10} {'seconds':>8} {'req/s':>9} {'server CPU s':>13}  statuses")
    status_text = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
    print(f"{done:>10} {elapsed:>8.2f} {done / elapsed:>9.0f} {server_cpu:>13.2f}  {status_text}")
    print(f"server exit code: {proc.returncode}")
    return 0 if set(statuses) == {201} else 1


if __name__ == "__main__":
    raise SystemExit(main())
