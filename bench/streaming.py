"""Streaming: how soon the first create leaves, and how memory grows with the file.

    .venv/bin/python bench/streaming.py [--run-rows 100000,1000000,2000000,5000000]
                                        [--run-cap 30] [--plan-rows 100000,1000000,2000000]

1. ``run`` (``--on-existing create``, ``--concurrency 64``) on each ``--run-rows`` file against
   an unlimited sandbox (own process, 0 ms). While it runs, ``/_sandbox/state`` is polled
   every 50 ms until the first contact exists; the delay is the contact's ``created_at``
   minus the moment the importer process was started (so Python start-up, the file check
   pass and the first batch's validation all count). The run is stopped with SIGTERM at
   ``--run-cap`` seconds (the importer drains and writes its report: every row not read is
   reported ``not_attempted``, ~200k rows/s, so a 20M-row file needs ~100 s of ``--grace``
   before the SIGKILL); peak RSS is the child's ``ru_maxrss`` from ``wait4``, which covers
   the whole life of the process.
   A full 5M-row run at ~3,000 creates/s would take about half an hour, so this is the
   memory of the check pass over the whole file plus the pipeline in steady state, not of a
   finished 5M import.
2. ``plan`` on each ``--plan-rows`` file, to the end: the whole read + validate + de-duplicate
   + report pipeline over every row, without the network. 5M rows take ~1-2 min and 20M
   ~5-8 min (phone parsing dominates), so they are opt-in:
   ``--plan-rows 100000,1000000,2000000,5000000,20000000`` (the 20M file is ~1.1 GB).
3. ``plan`` from other sources on each ``--source-rows`` (the same generated rows): a query
   on a PostgreSQL table (``--sql``, a server started here, read a batch at a time) and a
   Parquet object in S3 (moto's server on loopback, ``AWS_ENDPOINT_URL``; downloaded to a
   private copy, then read as a file). Each source's peak against its own at the smallest
   size. ``--source-rows ""`` leaves them out.
Targets: first create within 2 s on 1M rows; peak RSS of a 5M-row run under 1 GiB; flat
memory: the peak of ``run`` and of ``plan`` on 2M rows at most 1.5x their peak on 100k rows
(the "x smallest" column, with 100k the smallest file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from common import ENV, PY, Sandbox, importer_run, iso_to_epoch, run_child, table, workdir
from gen import ensure


def first_create(box: Sandbox) -> Any:
    """A ``watch`` callback: True (and records the time) once a contact exists."""
    seen: dict[str, float] = {}

    def watch(pid: int, elapsed: float) -> bool:
        if elapsed - seen.get("last", -1.0) < 0.05:
            return False
        seen["last"] = elapsed
        try:
            with urllib.request.urlopen(f"{box.root}/_sandbox/state", timeout=5) as resp:
                state = json.loads(resp.read())
        except OSError:
            return False
        if not state["contacts"]:
            return False
        seen["first_epoch"] = min(iso_to_epoch(c["created_at"]) for c in state["contacts"])
        seen["seen_at"] = elapsed
        return True

    watch.seen = seen  # type: ignore[attr-defined]
    return watch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-rows", default="100000,1000000,2000000,5000000")
    parser.add_argument("--run-cap", type=float, default=30.0, help="seconds per run")
    parser.add_argument("--plan-rows", default="100000,1000000,2000000")
    parser.add_argument("--source-rows", default="100000,2000000",
                        help="rows for the PostgreSQL and S3 Parquet sources")
    parser.add_argument("--grace", type=float, default=150.0,
                        help="seconds from the SIGTERM to a SIGKILL")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load", nargs=3, metavar=("ROWS", "CSV", "PARQUET"),
                        help=argparse.SUPPRESS)  # from_sources' loading child
    args = parser.parse_args()
    if args.load:
        load(int(args.load[0]), Path(args.load[1]), Path(args.load[2]))
        return 0
    run_sizes = [int(x) for x in args.run_rows.split(",") if x]
    plan_sizes = [int(x) for x in args.plan_rows.split(",") if x]
    source_sizes = [int(x) for x in args.source_rows.split(",") if x]
    sizes = sorted({*run_sizes, *plan_sizes, *source_sizes})
    files = {n: ensure(n, seed=args.seed) for n in sizes}
    rows: list[list[Any]] = []
    for n in run_sizes:
        print(f"[streaming] run on {n} rows, cap {args.run_cap:.0f} s ...", flush=True)
        with workdir("stream-") as tmp, Sandbox(unlimited=True, latency_ms="0") as box:
            watch = first_create(box)
            res = importer_run(
                box, files[n], workdir=Path(tmp), concurrency=args.concurrency,
                timeout_s=args.run_cap, watch=watch, sample_rss_every=0.5, grace_s=args.grace,
            )  # fmt: skip
        seen = watch.seen
        delay = seen["first_epoch"] - res.child.started_epoch if "first_epoch" in seen else None
        s = res.summary
        rows.append([
            "run (capped)", n, delay, seen.get("seen_at"), res.child.wall_s, s.get("created"),
            s.get("rows_total"), res.child.max_rss_mib,
            max((r for _, r in res.child.samples), default=None), res.child.returncode,
        ])  # fmt: skip
    for n in plan_sizes:
        print(f"[streaming] plan on {n} rows ...", flush=True)
        with workdir("stream-plan-") as tmp:
            child = run_child([PY, "-m", "importer", "plan", str(files[n]), "--default-region",
                               "ID", "--report-dir", str(Path(tmp) / "report")])  # fmt: skip
        rows.append(["plan (whole file)", n, None, None, child.wall_s, None, n,
                     child.max_rss_mib, None, child.returncode])  # fmt: skip
    if source_sizes:
        rows += from_sources({n: files[n] for n in source_sizes})
    smallest: dict[str, tuple[int, float]] = {}
    for row in rows:  # each peak against the same command's on the smallest file
        if row[0] not in smallest or row[1] < smallest[row[0]][0]:
            smallest[row[0]] = (row[1], row[7])
    for row in rows:
        base = smallest[row[0]][1]
        row.insert(8, row[7] / base if base else None)
    table(
        ["what", "file rows", "first create s", "seen by poll s", "wall s", "created",
         "rows reported", "peak RSS MiB", "x smallest", "RSS sampled MiB", "exit"],
        rows,
        title="streaming (targets: first create <= 2 s on 1M rows; 5M run peak RSS < 1024 MiB; "
        "peak at 2M rows <= 1.5x the peak at 100k, run and plan)",
    )  # fmt: skip
    print("first create: sandbox created_at of the first contact minus importer process start. "
          "run rows are SIGTERMed at the cap (exit 3 = stopped); rows reported = rows in "
          "summary.json (sent + settled before the stop).")  # fmt: skip
    return 0


def load(n: int, file: Path, parquet: Path) -> None:
    """Put the rows of ``file`` into PostgreSQL (table ``contacts_N``) and, as Parquet, into
    the S3 bucket ``bench``: run in a child of its own (``--load``), because a child's peak
    RSS as ``wait4`` reports it starts from its parent's at the fork, and this parent must
    stay small for the importer's own peak to be measured."""
    import adbc_driver_postgresql.dbapi as pg
    import boto3
    import polars as pl

    frame = pl.read_csv(file, infer_schema=False)
    frame.write_parquet(parquet, row_group_size=50_000)
    s3 = boto3.client("s3")
    if not s3.list_buckets().get("Buckets"):
        s3.create_bucket(Bucket="bench")
    s3.upload_file(str(parquet), "bench", parquet.name)
    with pg.connect(os.environ["KIRIM_SOURCE_DB"]) as conn, conn.cursor() as cur:
        cur.adbc_ingest(f"contacts_{n}", frame.to_arrow(), mode="replace")
        conn.commit()


def from_sources(files: dict[int, Path]) -> list[list[Any]]:
    """``plan`` on the same rows from a PostgreSQL query and from a Parquet object in S3."""
    from tests import servers

    rows: list[list[Any]] = []
    with (
        servers.postgres("bench-pw") as uri,
        servers.moto() as endpoint,
        workdir("stream-src-") as tmp,
    ):
        aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": endpoint}  # fmt: skip
        env = {**ENV, **aws, "KIRIM_SOURCE_DB": uri}
        for n, file in files.items():
            parquet = Path(tmp) / f"contacts-{n}.parquet"
            subprocess.run([PY, __file__, "--load", str(n), str(file), str(parquet)], env=env,
                           check=True)  # fmt: skip
            for what, source in (
                ("plan --sql (PostgreSQL)",
                 ["--sql", f'SELECT "Phone", "Name", "Email", "City" FROM contacts_{n}']),
                ("plan s3:// Parquet", [f"s3://bench/{parquet.name}"]),
            ):  # fmt: skip
                print(f"[streaming] {what} on {n} rows ...", flush=True)
                child = run_child(
                    [PY, "-m", "importer", "plan", *source, "--default-region", "ID",
                     "--report-dir", str(Path(tmp) / f"report-{n}-{len(rows)}")],
                    env=env,
                )  # fmt: skip
                if child.returncode not in (0, 1):
                    print(child.output[-2000:])
                rows.append([what, n, None, None, child.wall_s, None, n, child.max_rss_mib,
                             None, child.returncode])  # fmt: skip
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
