"""What the SQLite journal costs: the throughput ceiling with the journal on and with it off.

    .venv/bin/python bench/journal_cost.py [--rows 20000] [--micro-rows 200000] [--repeat 2]

1. End to end: ``run --on-existing create`` against an unlimited sandbox (own process, 0 ms,
   ``--concurrency 128``), three ways, alternating ``--repeat`` times:
   - ``on, disk``: the importer as shipped, its journal in bench/data;
   - ``on, tmpfs``: the journal on /dev/shm (no fsync or disk wait; SQLite's CPU remains);
   - ``off``: the same run with a journal that keeps nothing (``NoJournal`` below, passed
     through ``pipeline.run``'s ``journal_type`` seam by this script run as the child).
   Cost = 1 - (on, disk) / off, from the best run of each.
2. In process: ``importer.send.journal.Journal`` driven the way the dispatcher drives it, per
   chunk of 256: ``await entries(...)``, ``await intend(...)`` (one commit), then
   ``record(...)`` per row (a commit every 500, on the journal's thread) and ``close``.
   It shows the SQLite work per row, which runs on the journal's own thread; an awaited
   call also waits for the outcome commits queued ahead of it, so only the total is exact.
Target: journalling costs under 10% of the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import DATA, Sandbox, bodies, importer_run, table, workdir
from gen import ensure

from importer.send.client import idempotency_key
from importer.send.journal import Journal
from importer.send.records import Entry, Outcome

BUDGET_US = 1e6 / 3000
CHUNK = 256
CHILD_FLAG = "--as-importer-without-journal"


class NoJournal(Journal):
    """Journal off, for this benchmark only: answers at once and keeps nothing."""

    def __init__(self, path: Path, *, org: str, account: str, **seams: Any) -> None:
        self.path, self.run_id, self.resumed, self._clock = path, 1, False, time.time  # no SQLite

    def start_run(self, *, fingerprint: str) -> int:
        return self.run_id

    async def entries(self, phones: Sequence[str]) -> dict[str, Entry]:
        return {}

    async def intend(self, items: Any, cells: Any = ()) -> None:
        pass

    def remember(self, cells: Any) -> None:
        pass

    def record(self, outcome: Outcome) -> None:
        pass

    def close(self, *, finished: bool = False) -> None:
        pass


def child(argv: list[str]) -> int:
    """``python -m importer`` as the CLI runs it, with ``NoJournal`` in the seam."""
    from importer import cli, pipeline

    options = cli.run_options(cli.build_parser().parse_args(argv))
    run = pipeline.run(options=options, out=sys.stdout, err=sys.stderr, journal_type=NoJournal)
    return asyncio.run(run)


async def micro(directory: Path, phones: list[str], keys: list[str]) -> dict[str, float]:
    journal = Journal(directory / "j.sqlite", org="org_bench", account="106540352242922")
    journal.start_run(fingerprint="bench")
    total = {"entries": 0.0, "intend": 0.0, "record": 0.0}
    for start in range(0, len(phones), CHUNK):
        ph, ks = phones[start : start + CHUNK], keys[start : start + CHUNK]
        t = time.perf_counter()
        await journal.entries(ph)
        total["entries"] += time.perf_counter() - t
        t = time.perf_counter()
        await journal.intend((p, k, True) for p, k in zip(ph, ks, strict=True))
        total["intend"] += time.perf_counter() - t
        t = time.perf_counter()
        for p in ph:
            journal.record(Outcome(p, "done", "created", contact_id="ctc_x", http_status=201,
                                   request_id="req_x"))  # fmt: skip
        total["record"] += time.perf_counter() - t
    t = time.perf_counter()
    journal.close()  # waits for every outcome commit
    total["record"] += time.perf_counter() - t
    return total


def main() -> int:
    if sys.argv[1:2] == [CHILD_FLAG]:
        return child(sys.argv[2:])
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
    ways = {"on, disk": DATA, "on, tmpfs": shm, "off": DATA}
    rates: dict[str, list[float]] = {way: [] for way in ways}
    for i in range(args.repeat):
        for way, base in ways.items():
            print(f"[journal] run {i + 1}/{args.repeat}, journal {way} ...", flush=True)
            program = (str(Path(__file__).resolve()), CHILD_FLAG) if way == "off" else None
            with tempfile.TemporaryDirectory(prefix="journal-", dir=base) as jdir, \
                    workdir("journal-run-") as tmp, Sandbox(unlimited=True) as box:  # fmt: skip
                res = importer_run(box, file, workdir=Path(tmp), concurrency=args.concurrency,
                                   state_db=Path(jdir) / "journal.sqlite",
                                   **({"program": program} if program else {}))  # fmt: skip
            s = res.summary
            rate = s.get("created", 0) / s.get("elapsed_s", float("nan"))
            rates[way].append(rate)
            e2e.append([f"{way} #{i + 1}", s.get("created"), s.get("elapsed_s"), rate,
                        res.child.cpu_s, 1e6 * res.child.cpu_s / max(s.get("created", 1), 1),
                        box.cpu_s])  # fmt: skip
    best = {k: max(v) for k, v in rates.items()}
    table(["journal", "created", "elapsed s", "creates/s", "client CPU s", "client CPU us/row",
           "server CPU s"],
          e2e, title=f"end to end: run create, unlimited sandbox 0 ms, --concurrency "
          f"{args.concurrency}; best: on (disk) {best['on, disk']:.0f}/s, on (tmpfs) "
          f"{best['on, tmpfs']:.0f}/s, off {best['off']:.0f}/s; journal cost "
          f"{100 * (1 - best['on, disk'] / best['off']):+.1f}% (target < 10%)")  # fmt: skip

    items = list(bodies(args.micro_rows, seed=args.seed + 7))
    phones = [b["phone_number"] for b in items]
    keys = [idempotency_key(account="106540352242922", body=b) for b in items]
    micro_rows: list[list[Any]] = []
    for where, base in (("disk", DATA), ("tmpfs", shm)):
        d = Path(tempfile.mkdtemp(prefix="journal-micro-", dir=base))
        try:
            r = asyncio.run(micro(d, phones, keys))
        finally:
            shutil.rmtree(d, ignore_errors=True)
        n = len(phones)
        per_row = 1e6 * sum(r.values()) / n
        micro_rows.append([where, n, 1e6 * r["entries"] / n, 1e6 * r["intend"] / n,
                           1e6 * r["record"] / n, per_row])  # fmt: skip
    table(["journal", "rows", "entries us/row", "intend us/row", "record+close us/row",
           "total us/row"],
          micro_rows, title="in process: Journal as the dispatcher drives it, chunks of "
          f"{CHUNK} (the SQLite work, on the journal's thread; {BUDGET_US:.0f} us/row "
          "at 3,000/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
