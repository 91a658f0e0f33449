"""A nightly job's three nights, ours against 0.2.0's ``--on-existing update``.

    .venv/bin/python bench/nightly.py [--rows 100000] [--changed 0.01] [--new 0.005]
                                      [--journals ours,0.2.0]
    .venv/bin/python bench/nightly.py --first-sync [--rows 100000] [--baseline]

Night 1 imports ``--rows`` clean contacts into an unlimited sandbox (its own process, 0 ms);
night 2 sends the same export again; night 3 an export with ``--changed`` of the rows renamed
and ``--new`` more rows. Every night is ``run --on-existing update`` as a child process.

"ours" keeps its journal from night to night. "0.2.0" is the same importer with the journal's
body fingerprints cleared before each of its nights 2 and 3: exactly what a journal written
by 0.2.0 holds, so every row the journal knows is looked up again, as 0.2.0 did every night.
Each gets a fresh sandbox and its own night 1. Reported per night: the requests the sandbox
saw by method (contacts routes only), wall time (summary.json's ``elapsed_s``), and the
statuses. T* of a night's writes at 600 writes/min (Pro) is writes / 10 s.

``--first-sync``: the first sync against an account that holds every row already (issue 23):
night 1 fills the sandbox through one journal; then a run with a fresh journal (nothing for
this account: it pages the account into the journal by itself, ``send.adopt``) is counted at
the sandbox, reads (GET, every route) and writes (POST, PATCH). ``--baseline`` adds the way
before it, one lookup per row: the same run on a journal that holds one unrelated entry for
the account, which turns the automatic page-through off.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
from common import Sandbox, importer_run, table
from gen import ensure

CONTACT_ROUTES = ("/v1/{phone_number_id}/contacts", "/v1/{phone_number_id}/contacts/{contact_id}")


def requests_by_method(box: Sandbox) -> Counter[str]:
    return Counter(
        {
            f"{r['method']}": r["count"]
            for r in box.state()["requests"]
            if r["route"] in CONTACT_ROUTES
        }
    )


def exports(rows: int, changed: float, new: float, out: Path) -> tuple[Path, Path]:
    extra = int(rows * new)
    source = pl.read_csv(ensure(rows + extra, clean=True), infer_schema=False)
    night1 = out / "night1.csv"
    source.head(rows).write_csv(night1)
    every = max(int(1 / changed), 1) if changed > 0 else rows + 1
    name = next(c for c in source.columns if c.lower() in ("name", "nama", "full name"))
    night3 = out / "night3.csv"
    source.with_row_index("_i").with_columns(
        pl.when((pl.col("_i") % every == every - 1) & (pl.col("_i") < rows))
        .then(pl.col(name) + " (moved)")
        .otherwise(pl.col(name))
        .alias(name)
    ).drop("_i").write_csv(night3)
    return night1, night3


def clear_fingerprints(journal: Path) -> None:
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE contacts SET body_hash = NULL")


def nights(who: str, files: list[Path], work: Path) -> list[list[Any]]:
    rows: list[list[Any]] = []
    journal = work / f"{who}.sqlite"
    with Sandbox(unlimited=True, latency_ms="0") as box:
        before: Counter[str] = Counter()
        for i, file in enumerate(files, start=1):
            if who == "0.2.0" and i > 1:
                clear_fingerprints(journal)
            print(f"[nightly] {who}, night {i} ...", flush=True)
            res = importer_run(
                box, file, workdir=work / f"{who}-{i}", on_existing="update",
                concurrency=128, state_db=journal,
            )  # fmt: skip
            seen = requests_by_method(box)
            sent, before = seen - before, seen
            s = res.summary
            writes = sent["POST"] + sent["PATCH"]
            statuses = ", ".join(
                f"{k} {s.get(k, 0)}" for k in ("created", "updated", "unchanged", "exists")
                if s.get(k)
            )  # fmt: skip
            rows.append([who, i, s.get("rows_total"), sent["GET"], sent["POST"],
                         sent["PATCH"], sum(sent.values()), s.get("elapsed_s"), writes / 10.0,
                         statuses])  # fmt: skip
    return rows


def by_method(box: Sandbox) -> Counter[str]:
    return Counter({r["method"]: 0 for r in box.state()["requests"]}) + Counter(
        {f"{r['method']} {r['route']}": r["count"] for r in box.state()["requests"]}
    )


def first_sync(rows: int, work: Path, *, baseline: bool) -> list[list[Any]]:
    source = pl.read_csv(ensure(rows, clean=True), infer_schema=False)
    file = work / "crm.csv"
    source.write_csv(file)
    out: list[list[Any]] = []
    with Sandbox(unlimited=True, latency_ms="0") as box:
        print("[nightly] first sync: night 1 fills the account ...", flush=True)
        importer_run(box, file, workdir=work / "fill", on_existing="update", concurrency=128,
                     state_db=work / "fill.sqlite")  # fmt: skip
        ways = [("pages (fresh journal)", work / "fresh.sqlite")]
        if baseline:
            knows = work / "knows.sqlite"
            ways.append(("lookups (0.4.0's way)", knows))
        for label, journal in ways:
            if journal.name == "knows.sqlite":  # one unrelated entry for the account
                seed = work / "seed.csv"
                seed.write_text("phone\n+6281299999999\n")
                importer_run(box, seed, workdir=work / "seed", on_existing="update",
                             state_db=journal)  # fmt: skip
            before = by_method(box)
            print(f"[nightly] first sync, {label} ...", flush=True)
            res = importer_run(box, file, workdir=work / label.split()[0], on_existing="update",
                               concurrency=128, state_db=journal)  # fmt: skip
            sent = by_method(box) - before
            reads = sum(v for k, v in sent.items() if k.startswith("GET "))
            writes = sum(v for k, v in sent.items() if k.split()[0] in ("POST", "PATCH"))
            s = res.summary
            statuses = ", ".join(
                f"{k} {s.get(k, 0)}" for k in ("created", "updated", "unchanged", "exists")
                if s.get(k)
            )  # fmt: skip
            out.append([label, s.get("rows_total"), reads,
                        sent.get("GET /v1/{phone_number_id}/contacts", 0), writes,
                        s.get("elapsed_s"), statuses, json.dumps(s.get("adopted"))])  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-sync", action="store_true", help="issue 23's measurement")
    parser.add_argument("--baseline", action="store_true", help="with --first-sync: lookups too")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--new", type=float, default=0.005)
    parser.add_argument(
        "--journals", default="ours,0.2.0", help="which to run, comma-separated (ours, 0.2.0)"
    )
    args = parser.parse_args()
    if args.first_sync:
        with tempfile.TemporaryDirectory(prefix="first-sync-") as tmp:
            rows = first_sync(args.rows, Path(tmp), baseline=args.baseline)
        table(
            ["way", "rows", "reads", "of them GET contacts", "writes", "elapsed s", "statuses",
             "adopted"],
            rows,
            title=f"first sync: {args.rows} rows against an account holding them all; "
            "--on-existing update, unlimited sandbox at 0 ms",
        )  # fmt: skip
        return 0
    who = [w.strip() for w in args.journals.split(",") if w.strip()]
    with tempfile.TemporaryDirectory(prefix="nightly-") as tmp:
        work = Path(tmp)
        night1, night3 = exports(args.rows, args.changed, args.new, work)
        files = [night1, night1, night3]
        out = [row for w in who for row in nights(w, files, work)]
    table(
        ["journal", "night", "rows", "GET", "POST", "PATCH", "requests", "elapsed s",
         "T* of the writes at 600/min, s", "statuses"],
        out,
        title=f"nightly: {args.rows} rows; night 2 unchanged; night 3 {args.changed:.1%} "
        f"changed, {args.new:.1%} new; --on-existing update, unlimited sandbox at 0 ms",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
