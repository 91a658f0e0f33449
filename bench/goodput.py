"""Goodput under a real rate limit: the importer vs a sequential and a reactive client.

    .venv/bin/python bench/goodput.py [--limits 6000] [--concurrency auto] [--baseline-s 60]

For each write limit L (per minute) the sandbox runs in its own process with
``--write-per-minute L --latency-ms 50-150`` and the importer imports N = 2L clean rows
(``--on-existing create``): the bucket's capacity plus 60 s of refill, so the best possible
time T* is 60 s after the first write (the last token exists then) plus one round trip.
Reported: the importer's ``elapsed_s`` (summary.json, whole command: reading, pre-flight,
sending), the sending phase as the sandbox saw it (first to last ``created_at``), the ratio to
T*, and the 429 count and share.

Then, each against a FRESH sandbox with the same settings and capped at ``--baseline-s``:
(a) sequential: one ``httpx.Client``, one request at a time, the importer's idempotency keys,
sleeps Retry-After on a 429; (b) reactive: asyncio + ``httpx.AsyncClient``, 32 workers, no
pacing, a worker that gets a 429 sleeps Retry-After and retries (what a typical SDK does).

Default: L = 6000 only (about 3.5 min). All three limits (``--limits 600,6000,60000``) take
about 11 min, so they are opt-in. L = 60000 needs ~2000 creates/s: ``--concurrency auto``
sizes the importer's pool to 1.25 x the in-flight requests that rate needs at 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from pathlib import Path
from typing import Any

import httpx
from common import Sandbox, bodies, create_times, encoded, importer_run, table, workdir
from gen import ensure

LATENCY = "50-150"
RTT_S = 0.150  # worst-case round trip of the sandbox's latency range


def auto_concurrency(limit: int) -> int:
    rate = 2 * limit / 60  # creates/s needed on average to finish in T*
    return max(32, min(512, math.ceil(rate * RTT_S * 1.25)))


def retry_after(resp: httpx.Response) -> float:
    try:
        return max(float(resp.headers.get("retry-after", "1")), 0.0)
    except ValueError:
        return 1.0


def sequential(box: Sandbox, items: list[tuple[bytes, str]], cap_s: float) -> dict[str, Any]:
    account = box.account()
    created = n429 = sent = 0
    headers = {"Authorization": f"Bearer {box.token}", "Content-Type": "application/json"}
    start = time.perf_counter()
    deadline = start + cap_s
    with httpx.Client(base_url=box.base_url + "/", headers=headers, timeout=30) as client:
        for body, key in items:
            while time.perf_counter() < deadline:
                resp = client.post(
                    f"{account}/contacts", content=body, headers={"Idempotency-Key": key}
                )
                sent += 1
                if resp.status_code == 429:
                    n429 += 1
                    time.sleep(min(retry_after(resp), max(deadline - time.perf_counter(), 0)))
                    continue
                created += resp.is_success
                break
            if time.perf_counter() >= deadline:
                break
    return {"created": created, "sent": sent, "http_429": n429,
            "elapsed": time.perf_counter() - start}  # fmt: skip


async def reactive(
    box: Sandbox, items: list[tuple[bytes, str]], cap_s: float, workers: int = 32
) -> dict[str, Any]:
    account = box.account()
    stats = {"created": 0, "sent": 0, "http_429": 0}
    headers = {"Authorization": f"Bearer {box.token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    queue = iter(items)
    start = time.perf_counter()

    async with httpx.AsyncClient(
        base_url=box.base_url + "/", headers=headers, limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            for body, key in queue:
                while True:
                    resp = await client.post(
                        f"{account}/contacts", content=body, headers={"Idempotency-Key": key}
                    )
                    stats["sent"] += 1
                    if resp.status_code == 429:
                        stats["http_429"] += 1
                        await asyncio.sleep(retry_after(resp))
                        continue
                    stats["created"] += resp.is_success
                    break

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        _, pending = await asyncio.wait(tasks, timeout=cap_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {**stats, "elapsed": time.perf_counter() - start}


def one_limit(limit: int, concurrency: int, cap_s: float, seed: int) -> list[list[Any]]:
    rows_n = 2 * limit
    t_star = 60.0
    file = ensure(rows_n, seed=seed, clean=True)
    out: list[list[Any]] = []
    print(f"[goodput] L={limit}/min N={rows_n} importer --concurrency {concurrency} ...",
          flush=True)  # fmt: skip
    with workdir("goodput-") as tmp, Sandbox(write_per_minute=limit, latency_ms=LATENCY) as box:
        res = importer_run(box, file, workdir=Path(tmp), concurrency=concurrency)
        state = box.state()
    s = res.summary
    times = create_times(state)
    span = times[-1] - times[0] if times else float("nan")
    from_start = times[-1] - res.child.started_epoch if times else float("nan")
    sent = max(s.get("requests_sent", 0), 1)
    out.append([
        "importer", limit, rows_n, t_star, s.get("elapsed_s"), span, from_start,
        span / t_star, s.get("created"), s.get("created", 0) / max(span, 1e-9),
        s.get("http_429"), state.get("rate_limited"), 100 * s.get("http_429", 0) / sent,
    ])  # fmt: skip
    items = encoded(state["account_id"], list(bodies(rows_n, seed=seed)))
    print(f"[goodput] L={limit}: sequential baseline, {cap_s:.0f} s cap ...", flush=True)
    with Sandbox(write_per_minute=limit, latency_ms=LATENCY) as box:
        r = sequential(box, items, cap_s)
        st = box.state()
    out.append(_baseline_row("sequential", limit, rows_n, t_star, r, st))
    print(f"[goodput] L={limit}: reactive baseline (32 workers), {cap_s:.0f} s cap ...",
          flush=True)  # fmt: skip
    with Sandbox(write_per_minute=limit, latency_ms=LATENCY) as box:
        r = asyncio.run(reactive(box, items, cap_s))
        st = box.state()
    out.append(_baseline_row("reactive-32", limit, rows_n, t_star, r, st))
    return out


def _baseline_row(
    name: str, limit: int, n: int, t_star: float, r: dict[str, Any], st: dict[str, Any]
) -> list[Any]:
    times = create_times(st)
    span = times[-1] - times[0] if times else float("nan")
    return [
        name, limit, n, t_star, r["elapsed"], span, None, None, r["created"],
        r["created"] / r["elapsed"], r["http_429"], st.get("rate_limited"),
        100 * r["http_429"] / max(r["sent"], 1),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default="6000", help="comma list, e.g. 600,6000,60000")
    parser.add_argument("--concurrency", default="auto", help="importer --concurrency, or auto")
    parser.add_argument("--baseline-s", type=float, default=60.0, help="cap per baseline")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: list[list[Any]] = []
    for limit in (int(x) for x in args.limits.split(",")):
        conc = auto_concurrency(limit) if args.concurrency == "auto" else int(args.concurrency)
        rows += one_limit(limit, conc, args.baseline_s, args.seed)
        print(f"[goodput] L={limit}: importer used --concurrency {conc}")
    table(
        ["client", "L/min", "N", "T* s", "elapsed s", "send span s", "start->last s",
         "span/T*", "created", "creates/s", "429 client", "429 server", "429 %"],
        rows,
        title=f"goodput, sandbox latency {LATENCY} ms (target: span <= 1.02 T* + RTT, 429 < 0.5%)",
    )  # fmt: skip
    print("elapsed s: importer summary.json elapsed_s (whole command) or baseline wall (capped);"
          " send span: first..last created_at in the sandbox; start->last: process start to "
          "last create.")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
