"""What the SQLite journal costs, against the per-row budget of the throughput ceiling.

    .venv/bin/python bench/journal_cost.py [--rows 20000] [--micro-rows 200000] [--repeat 2]

The importer has no "journal off" switch, so two emulations:

1. End to end: ``run --on-existing create`` against an unlimited sandbox (own process, 0 ms,
   ``--concurrency 128``) with ``--state`` on disk (bench/data) vs on /dev/shm (tmpfs: no
   fsync or disk cost; the SQLite CPU remains). ``--repeat`` alternates the two.
2. In process: ``importer.journal.Journal`` driven the way the dispatcher drives it, per
   batch of 50,000: ``entries(phones)`` (the lookup before sending), ``intend(...)`` (one
   transaction), then ``record(...)`` per row (flushed every 500) and ``close``. Reported per
   row and as a share of the 333 us a row may take at 3,000 creates/s; plus the longest
   single call, since these calls block the event loop (nothing is sent meanwhile).
Target: journalling under 10% of the ceiling.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DATA, Sandbox, bodies, importer_run, table, workdir
from gen import ensure

from importer.client import idempotency_key
from importer.journal import Journal, Outcome

BUDGET_US = 1e6 / 3000
BATCH = 50_000


def micro(directory: Path, phones: list[str], keys: list[str]) -> dict[str, float]:
    journal = Journal(directory / "j.sqlite", org="org_bench", account="106540352242922")
    journal.start_run(fingerprint="bench")
    worst = {"entries": 0.0, "intend": 0.0, "record": 0.0}
    total = {"entries": 0.0, "intend": 0.0, "record": 0.0}
    for start in range(0, len(phones), BATCH):
        ph, ks = phones[start : start + BATCH], keys[start : start + BATCH]
        t = time.perf_counter()
        journal.entries(ph)
        d = time.perf_counter() - t
        total["entries"] += d
        worst["entries"] = max(worst["entries"], d)
        t = time.perf_counter()
        journal.intend(zip(ph, ks, strict=True))
        d = time.perf_counter() - t
        total["intend"] += d
        worst["intend"] = max(worst["intend"], d)
        for p in ph:
            t = time.perf_counter()
            journal.record(Outcome(p, "done", "created", contact_id="ctc_x", http_status=201,
                                   request_id="req_x"))  # fmt: skip
            d = time.perf_counter() - t
            total["record"] += d
            worst["record"] = max(worst["record"], d)
    t = time.perf_counter()
    journal.close()
    total["record"] += time.perf_counter() - t
    return {**{f"{k}_s": v for k, v in total.items()}, **{f"{k}_max": v for k, v in worst.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per end-to-end run")
    parser.add_argument("--micro-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    shm = Path("/dev/shm")
    file = ensure(args.rows, seed=args.seed, clean=True)
    e2e: list[list[Any]] = []
    rates: dict[str, list[float]] = {"disk": [], "tmpfs": []}
    for i in range(args.repeat):
        for where in ("disk", "tmpfs"):
            print(f"[journal] run {i + 1}/{args.repeat}, journal on {where} ...", flush=True)
            base = DATA if where == "disk" else shm
            with tempfile.TemporaryDirectory(prefix="journal-", dir=base) as jdir, \
                    workdir("journal-run-") as tmp, Sandbox(unlimited=True) as box:  # fmt: skip
                res = importer_run(box, file, workdir=Path(tmp), concurrency=args.concurrency,
                                   state_db=Path(jdir) / "journal.sqlite")  # fmt: skip
            s = res.summary
            rate = s.get("created", 0) / s.get("elapsed_s", float("nan"))
            rates[where].append(rate)
            e2e.append([f"{where} #{i + 1}", s.get("created"), s.get("elapsed_s"), rate,
                        res.child.cpu_s, 1e6 * res.child.cpu_s / max(s.get("created", 1), 1)])
    best = {k: max(v) for k, v in rates.items()}
    table(["journal", "created", "elapsed s", "creates/s", "client CPU s", "client CPU us/row"],
          e2e, title=f"end to end: run create, unlimited sandbox 0 ms, --concurrency "
          f"{args.concurrency}; best disk {best['disk']:.0f}/s vs tmpfs {best['tmpfs']:.0f}/s "
          f"= {100 * (1 - best['disk'] / best['tmpfs']):+.1f}% for disk")  # fmt: skip

    items = list(bodies(args.micro_rows, seed=args.seed + 7))
    phones = [b["phone_number"] for b in items]
    keys = [idempotency_key(account="106540352242922", body=b) for b in items]
    micro_rows: list[list[Any]] = []
    for where, base in (("disk", DATA), ("tmpfs", shm)):
        d = Path(tempfile.mkdtemp(prefix="journal-micro-", dir=base))
        try:
            r = micro(d, phones, keys)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        n = len(phones)
        per_row = 1e6 * (r["entries_s"] + r["intend_s"] + r["record_s"]) / n
        micro_rows.append([where, n, 1e6 * r["entries_s"] / n, 1e6 * r["intend_s"] / n,
                           1e6 * r["record_s"] / n, per_row, 100 * per_row / BUDGET_US,
                           1e3 * r["entries_max"], 1e3 * r["intend_max"],
                           1e3 * r["record_max"]])  # fmt: skip
    table(["journal", "rows", "entries us/row", "intend us/row", "record+flush us/row",
           "total us/row", "% of 333 us", "max entries ms", "max intend ms", "max record ms"],
          micro_rows, title="in process: Journal as the dispatcher drives it "
          f"(batches of {BATCH}; budget {BUDGET_US:.0f} us/row at 3,000/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
