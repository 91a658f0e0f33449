"""Throughput of the sandbox server for simple contact creates.

Starts ``python -m importer.sandbox`` in a separate process (so client and server do not share
a GIL), drives it with an aiohttp keep-alive session and prints a small table.

    .venv/bin/python bench/bench_sandbox.py [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import aiohttp
from common import Sandbox


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
    with Sandbox(unlimited=True) as box:
        done, elapsed, statuses = asyncio.run(
            drive(
                box.base_url,
                box.token,
                requests=args.requests,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
            )
        )
    server_cpu = box.cpu_s  # whole server process, start-up included
    print(f"{'requests':>10} {'seconds':>8} {'req/s':>9} {'server CPU s':>13}  statuses")
    status_text = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
    print(f"{done:>10} {elapsed:>8.2f} {done / elapsed:>9.0f} {server_cpu:>13.2f}  {status_text}")
    return 0 if set(statuses) == {201} else 1


if __name__ == "__main__":
    raise SystemExit(main())
